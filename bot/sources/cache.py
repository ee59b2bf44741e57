"""Per-diagnosis call sharing: two checks asking the same thing cause one underlying call.

``cached(sources)`` wraps every source of the bundle in a proxy that memoizes its async
methods by (source, method, arguments): the first call starts the work, every identical
call (also while the first is still running) awaits the same future, and the outcome,
result or error, is kept for the life of the bundle (one diagnosis). ``calls`` counts the
underlying calls actually made, per source name (``prometheus``, ``kubernetes``, ...).

A caller that is cancelled (a check's timeout) does not cancel the shared work, so the
other callers still get their answer. Build a new bundle for each diagnosis: nothing here
ever expires.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from bot.sources.base import Sources

T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class CachedSources(Sources):
    """A ``Sources`` bundle whose identical calls run once; ``calls`` counts real calls."""

    calls: Counter[str] = field(default_factory=Counter)
    # Which sources still have a call running: names a hanging source when a check times out.
    waiting_on: Callable[[], tuple[str, ...]] = field(default=lambda: ())


def cached(sources: Sources) -> CachedSources:
    """``sources`` with every method call shared within the returned bundle."""
    memo = _Memo()
    return CachedSources(
        prometheus=_wrap(sources.prometheus, "prometheus", memo),
        kubernetes=_wrap(sources.kubernetes, "kubernetes", memo),
        metadata=_wrap(sources.metadata, "metadata", memo),
        objects=_wrap(sources.objects, "objects", memo),
        registry=_wrap(sources.registry, "registry", memo),
        calls=memo.calls,
        waiting_on=memo.waiting_on,
    )


def _wrap(source: S | None, name: str, memo: _Memo) -> S | None:
    # The proxy answers every attribute of ``source`` with the same signature, so it
    # satisfies the same Protocol; mypy cannot see through ``__getattr__``, hence the cast.
    return None if source is None else cast(S, _CachingProxy(source, name, memo))


class _Memo:
    """Futures by call key, shared by every proxy of one bundle."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._futures: dict[Hashable, asyncio.Future[Any]] = {}

    def waiting_on(self) -> tuple[str, ...]:
        """Sources with a call that has not finished, sorted."""
        return tuple(sorted({str(key[0]) for key, f in self._futures.items() if not f.done()}))  # type: ignore[index]

    async def run(self, source: str, key: Hashable, start: Callable[[], Awaitable[T]]) -> T:
        """The outcome of the call ``key``, starting it only if no identical call did."""
        future = self._futures.get(key)
        if future is None:
            self.calls[source] += 1
            future = asyncio.ensure_future(start())
            # A call still running when its diagnosis gave up may fail later, unobserved.
            future.add_done_callback(_observe)
            self._futures[key] = future
        # shield: one caller's cancellation must not cancel the others' answer.
        return cast(T, await asyncio.shield(future))


def _observe(future: asyncio.Future[Any]) -> None:
    """Mark the outcome as seen so a late failure is not logged as "never retrieved"."""
    if not future.cancelled():
        future.exception()


class _CachingProxy:
    """Stands in for one source: async methods are memoized, anything else passes through."""

    def __init__(self, target: object, name: str, memo: _Memo) -> None:
        self._target = target
        self._name = name
        self._memo = memo

    def __getattr__(self, attribute: str) -> Any:
        method = getattr(self._target, attribute)
        if not inspect.iscoroutinefunction(method):
            return method

        async def shared(*args: Any, **kwargs: Any) -> Any:
            key = (self._name, attribute, _arguments_key(method, args, kwargs))
            return await self._memo.run(self._name, key, lambda: method(*args, **kwargs))

        return shared

    def __repr__(self) -> str:
        return f"<cached {self._name}: {self._target!r}>"


def _arguments_key(
    method: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Hashable:
    """The arguments as bound to ``method``'s signature (defaults applied), hashable."""
    try:
        bound = inspect.signature(method).bind(*args, **kwargs)
    except (TypeError, ValueError):  # the call itself will raise the TypeError
        return _freeze((args, dict(kwargs)))
    bound.apply_defaults()
    return _freeze(dict(bound.arguments))


def _freeze(value: Any) -> Hashable:
    """A hashable stand-in for ``value`` (lists, dicts and sets become tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, set | frozenset):
        return tuple(sorted((_freeze(item) for item in value), key=repr))
    if isinstance(value, Hashable):
        return value
    return repr(value)
