"""Digest schedules: what users type after ``digest subscribe``, parsed and normalised.

Four forms, each optionally followed by an IANA time zone (UTC when none is given):

- ``daily 09:00 [Europe/Berlin]``
- ``weekdays 08:30 [zone]`` (Monday to Friday)
- ``hourly [zone]`` (on the hour; the zone matters only where it is offset by a part-hour)
- ``cron "0 */4 * * *" [zone]`` (minute hour day-of-month month day-of-week)

A parsed ``Schedule`` has a normalised spelling (stored, shown, parsed again at start-up)
and an APScheduler ``CronTrigger`` in its zone. A wall-clock time that a clock change
repeats (02:30 on the night summer time ends) fires once, as cron does, unless the hour is
a wildcard (``hourly``, ``cron "0 */4 * * *"``), which keeps firing every real hour.
Everything here is pure.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.cron import CronTrigger

from bot.errors import UsageError

DEFAULT_ZONE = "UTC"
FREQUENCIES = ("daily", "weekdays", "hourly", "cron")
EXAMPLES = '`daily 09:00`, `weekdays 08:30 Europe/Berlin`, `hourly` or `cron "0 */4 * * *"`'
CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_CRON_FIELD_NAMES = {
    "minute": "minute",
    "hour": "hour",
    "day": "day-of-month",
    "month": "month",
    "day_of_week": "day-of-week",
}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_MICROSECOND = timedelta(microseconds=1)


class DigestTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A ``CronTrigger`` that fires once at a wall-clock time a clock change repeats.

    On the night summer time ends, 02:30 happens twice; a plain ``CronTrigger`` fires at
    both. When the hour field is fixed (``daily 02:30``) the second one is skipped; when it
    is a wildcard (``hourly``, ``*/4``) both are real hours and both fire.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The next fire time after ``previous_fire_time`` (or from ``now``), see the class."""
        candidate: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while candidate is not None and self._skips(candidate):
            candidate = super().get_next_fire_time(candidate, candidate)
        return candidate

    def _skips(self, moment: datetime) -> bool:
        """Whether ``moment`` is the second pass of a repeated wall-clock time to skip."""
        hour_field = next(field for field in self.fields if field.name == "hour")
        if str(hour_field).startswith("*"):
            return False
        return is_repeated_wall_time(moment, self.timezone)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: its frequency, local time (daily, weekdays), cron expression and
    time zone name. ``spelling`` is the normalised form; ``trigger()`` the APScheduler one."""

    frequency: str
    zone: str = DEFAULT_ZONE
    at: tuple[int, int] | None = None
    cron: str | None = None

    @property
    def spelling(self) -> str:
        """The normalised form, e.g. ``daily 09:00 Europe/Berlin`` or ``hourly``."""
        if self.frequency == "hourly":
            return "hourly" if self.zone == DEFAULT_ZONE else f"hourly {self.zone}"
        if self.frequency == "cron":
            return f'cron "{self.cron}" {self.zone}'
        hour, minute = self.at or (0, 0)
        return f"{self.frequency} {hour:02d}:{minute:02d} {self.zone}"

    def trigger(self) -> DigestTrigger:
        """The APScheduler trigger that fires this schedule, in its time zone."""
        zone = ZoneInfo(self.zone)
        if self.frequency == "cron":
            fields = dict(zip(CRON_FIELDS, (self.cron or "").split(), strict=True))
            fields["day_of_week"] = cron_weekdays(fields["day_of_week"])
            return DigestTrigger(**fields, second=0, timezone=zone)
        if self.frequency == "hourly":
            return DigestTrigger(minute=0, second=0, timezone=zone)
        hour, minute = self.at or (0, 0)
        days = "mon-fri" if self.frequency == "weekdays" else "*"
        return DigestTrigger(day_of_week=days, hour=hour, minute=minute, second=0, timezone=zone)


def parse_schedule(words: Sequence[str]) -> Schedule:
    """Parse the words of a schedule (as the command line split them); ``UsageError`` if wrong.

    ``cron`` takes its five fields as one quoted word or as five words.
    """
    if not words:
        raise UsageError("Say when the digest should be posted.", hint=f"Use {EXAMPLES}.")
    frequency, *rest = words
    frequency = frequency.lower()
    if frequency not in FREQUENCIES:
        raise UsageError(
            f"`{frequency}` is not a schedule I know.", hint=_did_you_mean(frequency, FREQUENCIES)
        )
    if frequency == "hourly":
        return Schedule("hourly", zone=_zone_of(rest, 0))
    if frequency == "cron":
        cron, zone_words = _cron_words(rest)
        return _checked(Schedule("cron", zone=_zone_of(zone_words, 0), cron=cron))
    if not rest:
        raise UsageError(
            f"`{frequency}` needs a time of day.", hint=f"e.g. `{frequency} 09:00 Europe/Berlin`."
        )
    return Schedule(frequency, zone=_zone_of(rest, 1), at=parse_time_of_day(rest[0]))


def parse_schedule_text(text: str) -> Schedule:
    """Parse a schedule written as one line, e.g. a stored spelling."""
    try:
        words = shlex.split(text)
    except ValueError:
        raise UsageError(
            f"Could not read the schedule `{text}`.", hint='Close every quote: `cron "0 * * * *"`.'
        ) from None
    return parse_schedule(words)


def parse_time_of_day(word: str) -> tuple[int, int]:
    """``HH:MM`` on a 24-hour clock as (hour, minute); ``UsageError`` otherwise."""
    match = _TIME.match(word)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise UsageError(
            f"`{word}` is not a time of day.",
            hint="Use 24-hour HH:MM, from 00:00 to 23:59, e.g. `daily 09:00`.",
        )
    return int(match[1]), int(match[2])


def parse_zone(word: str) -> str:
    """The canonical name of the IANA time zone ``word`` (any letter case); else ``UsageError``."""
    if word.upper() in ("UTC", "Z", "GMT"):
        return DEFAULT_ZONE
    name = _zone_names().get(word.lower())
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):  # listed, but its data is missing
            name = None
    if name is None:
        close = difflib.get_close_matches(word, list(_zone_names().values()), n=1, cutoff=0.8)
        hint = f"Did you mean `{close[0]}`?" if close else "Use a name such as `Europe/Berlin`."
        raise UsageError(f"`{word}` is not a time zone I know.", hint=hint)
    return name


def next_runs(schedule: Schedule, after: datetime, n: int) -> list[datetime]:
    """The first ``n`` times (in UTC) ``schedule`` fires strictly after ``after``."""
    trigger = schedule.trigger()
    runs: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after + _MICROSECOND)
    while moment is not None and len(runs) < n:
        runs.append(moment.astimezone(UTC))
        moment = trigger.get_next_fire_time(moment, moment)
    return runs


def latest_run(schedule: Schedule, now: datetime, window: timedelta) -> datetime | None:
    """The last time (in UTC) ``schedule`` fired at or before ``now``, if within ``window``."""
    trigger = schedule.trigger()
    latest = None
    moment = trigger.get_next_fire_time(None, now - window)
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment)
    return None if latest is None else latest.astimezone(UTC)


def fires_at(schedule: Schedule, moment: datetime) -> bool:
    """Whether ``schedule`` fires exactly at ``moment``."""
    return next_runs(schedule, moment - _MICROSECOND, 1) == [moment.astimezone(UTC)]


def is_repeated_wall_time(moment: datetime, zone: tzinfo) -> bool:
    """Whether ``moment`` is the second pass of a local time that a clock change repeats."""
    return moment.astimezone(UTC).astimezone(zone).fold == 1


def _zone_of(words: Sequence[str], index: int) -> str:
    """The zone named at ``words[index]`` (UTC when absent); extra words are a ``UsageError``."""
    if len(words) > index + 1:
        extra = " ".join(words[index + 1 :])
        raise UsageError(
            f"I did not understand `{extra}` after the schedule.",
            hint="A schedule ends with an optional time zone, e.g. `daily 09:00 Europe/Berlin`.",
        )
    return parse_zone(words[index]) if len(words) > index else DEFAULT_ZONE


def _cron_words(words: Sequence[str]) -> tuple[str, Sequence[str]]:
    """The cron expression (five fields, quoted or not) and the words after it."""
    hint = 'Give five fields (minute hour day month weekday) in quotes: `cron "0 */4 * * *"`.'
    if not words:
        raise UsageError("`cron` needs an expression.", hint=hint)
    if len(words[0].split()) > 1:
        return " ".join(words[0].split()), words[1:]
    if len(words) >= len(CRON_FIELDS):
        return " ".join(words[: len(CRON_FIELDS)]), words[len(CRON_FIELDS) :]
    raise UsageError(f"`{' '.join(words)}` is not a cron expression.", hint=hint)


def _checked(schedule: Schedule) -> Schedule:
    """``schedule`` if its cron expression is valid and ever fires; else a ``UsageError``."""
    cron = schedule.cron or ""
    values = cron.split()
    if len(values) != len(CRON_FIELDS):
        raise UsageError(
            f"`{cron}` is not a cron expression: it has {len(values)} fields, not five.",
            hint='The fields are minute hour day month weekday, e.g. `cron "0 */4 * * *"`.',
        )
    for name, value in zip(CRON_FIELDS, values, strict=True):
        try:
            CronTrigger(**{name: cron_weekdays(value) if name == "day_of_week" else value})
        except ValueError:
            raise UsageError(
                f"`{cron}` is not a valid cron expression: its {_CRON_FIELD_NAMES[name]} "
                f"field `{value}` is wrong.",
                hint='e.g. `cron "0 */4 * * *"` (minute 0 of every fourth hour).',
            ) from None
    if values[2] != "*" and values[4] != "*":
        raise UsageError(
            f"`{cron}` names both days of the month and days of the week.",
            hint="Restrict one of them and leave the other `*`.",
        )
    if not next_runs(schedule, datetime.now(UTC), 1):
        raise UsageError(
            f"`{cron}` never fires (no date matches it).",
            hint="Check the day and the month, e.g. there is no 31 February.",
        )
    return schedule


def cron_weekdays(field: str) -> str:
    """A cron day-of-week field (0 or 7 is Sunday) in APScheduler's terms (named days).

    APScheduler numbers days from Monday = 0, so ``1-5`` would mean Tuesday to Saturday;
    naming them keeps the cron meaning. ``ValueError`` when the field does not read.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        body, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"bad step in {item!r}")
        first, _, last = body.partition("-")
        start = 0 if first == "*" else _weekday(first)
        end = _weekday(last) if last else (6 if first == "*" or slash else start)
        if end < start:
            raise ValueError(f"backwards range {body!r}")
        days.update(day % 7 for day in range(start, end + 1, int(step_text or 1)))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _weekday(word: str) -> int:
    """A day of the week as cron numbers it (Sunday 0 or 7), from a number or a name."""
    if word.isdigit() and int(word) <= 7:
        return int(word)
    if word in _DAY_NAMES:
        return _DAY_NAMES.index(word)
    raise ValueError(f"not a day of the week: {word!r}")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"Did you mean `{close[0]}`? Schedules are {EXAMPLES}."
    return f"Use {EXAMPLES}."


@cache
def _zone_names() -> dict[str, str]:
    """Every IANA zone name by its lower-case spelling."""
    return {name.lower(): name for name in available_timezones()}
