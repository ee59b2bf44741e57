"""The digest's chart: the last 24 h of four key series, drawn once per run as a PNG.

Four range queries (one per series, every ``STEP``) are made once per digest run and the
same picture goes to every channel due. The picture is made for a phone: four stacked
panels with one line each, large labels, the thresholds as dashed lines, and the periods
when incidents were open shaded. Drawing uses matplotlib's Agg canvas on a ``Figure`` (no
pyplot state), in a worker thread, so the bot's event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.digests.panels import (
    LEASE_WARNING,
    MEMORY_WARNING,
    THROTTLED_WARNING,
    breaker_query,
    memory_share_query,
    rate_query,
)
from bot.profiles import Profile
from bot.sources.base import Prometheus, SourceError
from bot.store.db import Database

WINDOW = timedelta(hours=24)
WINDOW_HOURS = WINDOW.total_seconds() / 3600.0
STEP = timedelta(minutes=5)
FIGURE_INCHES = (7.0, 10.0)
DPI = 110
FONT = 15
LINE_COLOUR = "#1f5fbf"
THRESHOLD_COLOUR = "#c0392b"
INCIDENT_COLOUR = "#f5b041"

_INCIDENT_PERIODS = """
    SELECT opened_at, coalesce(resolved_at, now()) FROM incidents
    WHERE opened_at < %(end)s AND coalesce(resolved_at, now()) > %(start)s
    ORDER BY opened_at
"""

Points = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ChartLine:
    """One panel of the chart: its series (empty: no data) and where it turns bad."""

    title: str
    points: Points
    threshold: float | None
    threshold_label: str
    percent: bool = False  # show values as percentages
    states: tuple[str, ...] = ()  # names of the values 0, 1, 2… (a state, not a level)


@dataclass(frozen=True)
class ChartData:
    """Everything the picture shows: the window, the four series, the incident periods."""

    start: datetime
    end: datetime
    lines: tuple[ChartLine, ...]
    incidents: tuple[tuple[datetime, datetime], ...]


@dataclass(frozen=True)
class ChartSpec:
    """A series to read: its query in the profile's spelling and its threshold."""

    title: str
    query: Callable[[Profile], str | None]
    threshold: float | None
    threshold_label: str
    percent: bool = False
    states: tuple[str, ...] = ()


def throttled_share_query(profile: Profile) -> str | None:
    """The share of the rate limiter's decisions that were not "allowed" (5 min rate)."""
    decisions = profile.metric("throttle_decisions_total")
    if decisions is None:
        return None
    limiter = 'decision!~".*circuit.*"'
    held = f'{limiter},decision!="{profile.allowed_decision}"'
    return f"sum(rate({decisions}{{{held}}}[5m])) / sum(rate({decisions}{{{limiter}}}[5m]))"


CHART_SERIES: tuple[ChartSpec, ...] = (
    ChartSpec(
        "Circuit breaker (worst agent)",
        breaker_query,
        None,
        "",
        states=("closed", "open", "half-open"),
    ),
    ChartSpec(
        "S3 PUTs throttled",
        throttled_share_query,
        THROTTLED_WARNING,
        f"{THROTTLED_WARNING:.0%}",
        percent=True,
    ),
    ChartSpec(
        "Lease conflicts per second",
        rate_query("lease_conflicts_total"),
        LEASE_WARNING,
        f"{LEASE_WARNING:g}/s",
    ),
    ChartSpec(
        "Memory use vs limit (worst agent)",
        lambda _profile: memory_share_query(),
        MEMORY_WARNING,
        f"{MEMORY_WARNING:.0%}",
        percent=True,
    ),
)


# -- reading --------------------------------------------------------------------------------
async def read_line(
    spec: ChartSpec, prometheus: Prometheus, profile: Profile, start: datetime, end: datetime
) -> ChartLine:
    """One series over the window (at most one range query); empty when it cannot be read."""
    query = spec.query(profile)
    points: Points = ()
    if query is not None:
        try:
            found = await prometheus.range(query, start=start, end=end, step=STEP)
        except SourceError:
            found = []
        points = found[0].points if found else ()
    return ChartLine(
        spec.title, points, spec.threshold, spec.threshold_label, spec.percent, spec.states
    )


async def incident_periods(
    db: Database, start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime], ...]:
    """When incidents were open within the window (still open: until now)."""
    async with db.pool.connection() as conn:
        cursor = await conn.execute(_INCIDENT_PERIODS, {"start": start, "end": end})
        return tuple((row[0], row[1]) for row in await cursor.fetchall())


async def read_chart_data(
    prometheus: Prometheus, profile: Profile, db: Database, end: datetime
) -> ChartData:
    """The four series (four queries) and the incident periods of the 24 h before ``end``."""
    start = end - WINDOW
    lines = await asyncio.gather(
        *(read_line(spec, prometheus, profile, start, end) for spec in CHART_SERIES)
    )
    return ChartData(start, end, tuple(lines), await incident_periods(db, start, end))


# -- drawing --------------------------------------------------------------------------------
def hours_before(end: datetime, at: datetime | float) -> float:
    """Where ``at`` (a datetime or UNIX seconds) lies on the x axis: hours before ``end``."""
    seconds = at.timestamp() if isinstance(at, datetime) else at
    return (seconds - end.timestamp()) / 3600.0


def shade_incidents(axes: Axes, data: ChartData) -> None:
    """The periods when an incident was open, shaded."""
    for opened, closed in data.incidents:
        left = max(hours_before(data.end, opened), -WINDOW_HOURS)
        right = min(hours_before(data.end, closed), 0.0)
        axes.axvspan(left, right, color=INCIDENT_COLOUR, alpha=0.35, linewidth=0)


def mark_threshold(axes: Axes, line: ChartLine, scale: float) -> None:
    """The threshold as a dashed red line, labelled at its right end."""
    if line.threshold is None:
        return
    level = line.threshold * scale
    axes.axhline(level, color=THRESHOLD_COLOUR, linestyle="--", linewidth=2)
    axes.annotate(
        line.threshold_label,
        xy=(1.0, level),
        xycoords=("axes fraction", "data"),
        ha="right",
        va="bottom",
        color=THRESHOLD_COLOUR,
        fontsize=FONT - 2,
    )


def draw_line(axes: Axes, line: ChartLine, data: ChartData) -> None:
    """One panel: the incident periods, the series (or "no data") and its threshold."""
    scale = 100.0 if line.percent else 1.0
    shade_incidents(axes, data)
    values = [(hours_before(data.end, t), v * scale) for t, v in line.points if not math.isnan(v)]
    if values:
        xs, ys = [x for x, _ in values], [y for _, y in values]
        axes.plot(xs, ys, color=LINE_COLOUR, linewidth=2.5)
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", fontsize=FONT)
    mark_threshold(axes, line, scale)
    axes.set_title(line.title, loc="left", fontsize=FONT, fontweight="bold")
    axes.set_xlim(-WINDOW_HOURS, 0.0)
    scale_y(axes, line, [y for _, y in values], scale)
    axes.tick_params(labelsize=FONT - 3)
    axes.grid(axis="y", alpha=0.3)


def scale_y(axes: Axes, line: ChartLine, ys: Sequence[float], scale: float) -> None:
    """Room above the highest value and the threshold; state names or percentages."""
    if line.states:
        axes.set_ylim(-0.2, len(line.states) - 0.8)
        axes.set_yticks(range(len(line.states)), line.states)
        return
    highest = max([*ys, (line.threshold or 0.0) * scale, 1e-9])
    axes.set_ylim(0.0, highest * 1.25)
    if line.percent:
        axes.yaxis.set_major_formatter("{x:g}%")


def hour_label(hours: float) -> str:
    """An x tick: "now" or "6 h ago"."""
    return "now" if hours == 0 else f"{-hours:.0f} h ago"


def render_chart(data: ChartData) -> bytes:
    """The PNG of ``data`` (CPU-bound: call it through ``chart_png``)."""
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes_list: Sequence[Axes] = figure.subplots(len(data.lines), 1, sharex=True)
    for axes, line in zip(axes_list, data.lines, strict=True):
        draw_line(axes, line, data)
    ticks = [-WINDOW_HOURS + 6.0 * step for step in range(5)]
    last = axes_list[-1]
    last.set_xticks(ticks, [hour_label(t) for t in ticks])
    last.set_xlabel("shaded: an incident was open", fontsize=FONT - 2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def chart_png(data: ChartData) -> bytes:
    """``render_chart`` in a worker thread."""
    return await asyncio.to_thread(render_chart, data)
