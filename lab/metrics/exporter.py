"""The lab's metrics endpoint: the World's series, integrated and spelled, over HTTP.

``MetricsExporter(world)`` serves ``GET /metrics`` in the Prometheus text format 0.0.4
from 127.0.0.1:<free port>, in its own thread and event loop. Every request renders the
World as it is at that moment; counters grow at the scenario's rates between requests
(``CounterIntegrator``), so ``rate()`` in Prometheus returns the scenario's numbers.

``history_openmetrics`` renders the same series at past instants as OpenMetrics, the
input of ``promtool tsdb create-blocks-from openmetrics`` (see ``lab.prometheus``). Pass
the exporter's ``counters`` so that the live counters carry on from the history.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType

from aiohttp import web

from lab.http import ServerThread
from lab.metrics.series import Family, Labels, Sample, derive
from lab.metrics.spelling import spell
from lab.world import World

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_INTERVAL = timedelta(seconds=1)  # the lab Prometheus' scrape interval
# Puts the world in the state it had at an instant (used to shape backfilled history).
Timeline = Callable[[World, datetime], None]
_Key = tuple[str, Labels]


class CounterIntegrator:
    """Integrates counter rates between snapshots: the state a real process would keep.

    Not thread-safe (the exporter serialises calls). A series seen for the first time, or
    with a new epoch (its process restarted), starts its integrated part at zero.
    """

    def __init__(self) -> None:
        self._last: float | None = None
        self._grown: dict[_Key, tuple[float, float]] = {}

    @property
    def last(self) -> float | None:
        """The instant (UNIX seconds) of the latest snapshot, if any."""
        return self._last

    def reset(self) -> None:
        """Forget every series and the last instant (a new scenario, a fresh history)."""
        self._last = None
        self._grown = {}

    def advance(self, families: Sequence[Family], at: float) -> list[Family]:
        """Resolve ``families`` at instant ``at``: counters get their grown values."""
        if self._last is not None and at < self._last:
            raise ValueError(f"counters cannot go back in time ({at} < {self._last})")
        elapsed = 0.0 if self._last is None else at - self._last
        self._last = at
        grown: dict[_Key, tuple[float, float]] = {}
        resolved = [
            self._resolve(f, elapsed, grown) if f.kind == "counter" else f for f in families
        ]
        self._grown = grown  # vanished series are forgotten, as by a restarted process
        return resolved

    def _resolve(
        self, family: Family, elapsed: float, grown: dict[_Key, tuple[float, float]]
    ) -> Family:
        samples = []
        for sample in family.samples:
            key = (family.name, sample.labels)
            before = self._grown.get(key)
            total = 0.0
            if before is not None and before[0] == sample.epoch:
                total = before[1] + sample.rate * elapsed
            grown[key] = (sample.epoch, total)
            samples.append(Sample(sample.labels, sample.value + total))
        return family.with_samples(samples)


def snapshot(world: World, counters: CounterIntegrator, at: float) -> list[Family]:
    """The World's families at instant ``at`` (UNIX seconds), in the world's spelling."""
    return spelled(world, counters.advance(derive(world), at))


def spelled(world: World, families: Sequence[Family]) -> list[Family]:
    """Resolved families in the spelling of the world's profile and instrumentation."""
    with world.lock:
        profile, org_id = world.profile, world.org_id
        instrumented = world.prometheus_instrumented
    return spell(families, profile, org_id=org_id, instrumented=instrumented)


# -- exposition formats ------------------------------------------------------------------
def _format_value(value: float) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def _escape(text: str, *, quote: bool) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return escaped.replace('"', '\\"') if quote else escaped


def _format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{_escape(value, quote=True)}"' for key, value in labels)
    return "{" + pairs + "}"


def render_text(families: Sequence[Family]) -> str:
    """Families in the Prometheus text format 0.0.4 (HELP and TYPE even without samples)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        lines.extend(
            f"{family.name}{_format_labels(s.labels)} {_format_value(s.value)}"
            for s in family.samples
        )
    return "\n".join(lines) + "\n"


def render_openmetrics(frames: Sequence[tuple[float, Sequence[Family]]]) -> str:
    """Timestamped snapshots as one OpenMetrics document, each series' points together."""
    series: dict[str, tuple[Family, dict[Labels, list[tuple[float, float]]]]] = {}
    for at, families in frames:
        for family in families:
            _, points = series.setdefault(family.name, (family, {}))
            for sample in family.samples:
                points.setdefault(sample.labels, []).append((at, sample.value))
    lines: list[str] = []
    for family, points in series.values():
        if not points:
            continue
        # OpenMetrics names a counter family without the _total of its samples.
        base = family.name.removesuffix("_total") if family.kind == "counter" else family.name
        lines.append(f"# HELP {base} {_escape(family.help, quote=False)}")
        lines.append(f"# TYPE {base} {family.kind}")
        for labels, values in points.items():
            prefix = family.name + _format_labels(labels)
            lines.extend(f"{prefix} {_format_value(v)} {at:.3f}" for at, v in values)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def history_instants(
    start: datetime, end: datetime, step: timedelta, dense: timedelta = timedelta(0)
) -> list[datetime]:
    """Every ``step`` from ``start``, then every second (the live scrape interval) over the
    last ``dense`` up to and including ``end``.

    A dense tail matters: Prometheus extrapolates ``rate()`` only as far as the average
    sample spacing, so a window mixing sparse history and 1 s live samples reads low.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("history instants must be timezone-aware")
    if step <= timedelta(0) or end < start:
        raise ValueError("history needs start <= end and a positive step")
    dense_from = max(start, end - dense)
    instants: list[datetime] = []
    at = start
    while at < dense_from:
        instants.append(at)
        at += step
    at = dense_from
    while at <= end:
        instants.append(at)
        at += SCRAPE_INTERVAL
    return instants


def history_openmetrics(
    world: World,
    instants: Sequence[datetime],
    *,
    counters: CounterIntegrator | None = None,
    timeline: Timeline | None = None,
) -> str:
    """The World's series at each of ``instants`` (ascending), as one OpenMetrics document.

    ``timeline(world, at)`` (optional) sets the world to its state at each instant and is
    called once more with the present instant at the end. Counters integrate over the
    history; pass the exporter's ``counters`` so live scrapes continue from it.
    """
    integrator = counters if counters is not None else CounterIntegrator()
    steady = derive(world) if timeline is None else None  # the world does not change
    frames: list[tuple[float, Sequence[Family]]] = []
    for at in instants:
        if timeline is not None:
            timeline(world, at)
        families = steady if steady is not None else derive(world)
        resolved = integrator.advance(families, at.timestamp())
        frames.append((at.timestamp(), spelled(world, resolved)))
    if timeline is not None:
        timeline(world, datetime.now(UTC))
    return render_openmetrics(frames)


class MetricsExporter:
    """``GET /metrics`` for a World, as Prometheus would scrape Streamhouse and friends.

    ``clock`` gives the instant (UNIX seconds) counters integrate to; inject one to test.
    """

    def __init__(self, world: World, *, clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.counters = CounterIntegrator()
        self._clock = clock
        self._lock = threading.Lock()
        self._server = ServerThread(lambda _base: self._build_app(), name="the metrics exporter")

    def render(self) -> str:
        """The metrics page as of now (advances the counters)."""
        families = derive(self.world)
        # Never hold the world's lock and ours together: callers may render under theirs.
        with self._lock:
            resolved = self.counters.advance(families, self._clock())
        return render_text(spelled(self.world, resolved))

    def _build_app(self) -> web.Application:
        async def metrics(request: web.Request) -> web.Response:
            body = self.render().encode()
            return web.Response(body=body, headers={"Content-Type": TEXT_CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        return app

    def start(self, timeout: float = 5.0) -> None:
        """Serve on 127.0.0.1:<free port>; returns once it accepts connections."""
        self._server.start(timeout)

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (empty before ``start``)."""
        return self._server.base_url

    @property
    def metrics_url(self) -> str:
        """The scrape URL."""
        return f"{self.url}/metrics"

    @property
    def target(self) -> str:
        """``host:port`` as a Prometheus static target."""
        return self.url.removeprefix("http://")

    def __enter__(self) -> MetricsExporter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
