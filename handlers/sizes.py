"""Byte sizes as the runbooks state them (GiB, MiB) and as engineers read them."""

from __future__ import annotations

GIB, MIB = 1024**3, 1024**2


def size_text(size: float) -> str:
    """Bytes for humans: ``12.0 GiB``, ``180 MiB``."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"
