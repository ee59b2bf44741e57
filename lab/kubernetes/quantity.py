"""Kubernetes resource quantities: format them like the API server, parse what clients send.

The API server prints CPU as whole cores (``"1"``) or millicores (``"500m"``) and memory
with the largest exact binary suffix (``"2Gi"``, ``"512Mi"``). Clients may send any valid
quantity (``"2048Mi"``, ``"1.5"``, ``"4G"``, ``"4294967296"``); ``parse_quantity`` reads all
of them and raises ``ValueError`` on anything else.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def parse_quantity(text: object) -> Decimal:
    """The value of a quantity string (or a JSON number), e.g. ``"2Gi"`` → 2147483648."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"quantities must match the regular expression: {text!r}") from exc
    if suffix in _BINARY:
        return value * Decimal(1024 ** _BINARY[suffix])
    scaled: Decimal = value.scaleb(_DECIMAL[suffix])
    return scaled


def parse_cpu(text: object) -> float:
    """A CPU quantity in cores (``"500m"`` → 0.5)."""
    return float(parse_quantity(text))


def parse_bytes(text: object) -> int:
    """A memory or storage quantity in bytes, rounded up like the API server does."""
    value = parse_quantity(text)
    whole = int(value)
    return whole if whole == value else whole + 1


def format_cpu(cores: float) -> str:
    """``1.0`` → ``"1"``, ``0.5`` → ``"500m"``, ``1.25`` → ``"1250m"``."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(size: int) -> str:
    """``2147483648`` → ``"2Gi"``; sizes without an exact binary suffix stay plain bytes."""
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = 1024**power
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def format_nanocores(cores: float) -> str:
    """CPU usage the way metrics-server reports it: ``0.5`` → ``"500000000n"``."""
    return f"{round(cores * 1_000_000_000)}n"


def format_kibibytes(size: int) -> str:
    """Memory usage the way metrics-server reports it: whole KiB (``"1048576Ki"``)."""
    return f"{size // 1024}Ki"
