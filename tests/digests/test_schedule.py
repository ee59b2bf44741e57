"""Digest schedules with fixed datetimes: parsing, normalising, and when they fire.

The daylight-saving changes used: Europe/Berlin 2026-03-29 (02:00 → 03:00) and 2026-10-25
(03:00 → 02:00); America/New_York 2026-03-08 (02:00 → 03:00) and 2026-11-01 (02:00 → 01:00).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.digests.schedule import (
    cron_weekdays,
    fires_at,
    latest_run,
    next_runs,
    parse_schedule,
    parse_schedule_text,
)
from bot.errors import UsageError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    """A UTC datetime from year, month, day, hour, minute."""
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def local(runs: list[datetime], zone: ZoneInfo) -> list[str]:
    """Runs as local wall-clock times with their offsets, for readable assertions."""
    return [run.astimezone(zone).strftime("%a %m-%d %H:%M%z") for run in runs]


@pytest.mark.parametrize(
    ("typed", "spelling"),
    [
        ("daily 09:00 Europe/Berlin", "daily 09:00 Europe/Berlin"),
        ("DAILY 9:05", "daily 09:05 UTC"),
        ("daily 09:00 europe/berlin", "daily 09:00 Europe/Berlin"),
        ("weekdays 08:30", "weekdays 08:30 UTC"),
        ("hourly", "hourly"),
        ("hourly utc", "hourly"),
        ("hourly Asia/Kolkata", "hourly Asia/Kolkata"),
        ('cron "0 */4 * * *"', 'cron "0 */4 * * *" UTC'),
        ('cron "0  */4 * * *" America/New_York', 'cron "0 */4 * * *" America/New_York'),
        ("cron 0 */4 * * * Europe/Berlin", 'cron "0 */4 * * *" Europe/Berlin'),
    ],
)
def test_schedules_are_normalised_and_read_back(typed: str, spelling: str) -> None:
    """Every form normalises to one spelling, which parses back to itself."""
    schedule = parse_schedule_text(typed)
    assert schedule.spelling == spelling
    assert parse_schedule_text(spelling) == schedule


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("daily 25:00", "`25:00` is not a time of day."),
        ("daily 09:60", "`09:60` is not a time of day."),
        ("weekdays nine", "`nine` is not a time of day."),
        ("daily", "`daily` needs a time of day."),
        ("daily 09:00 Mars/Olympus", "`Mars/Olympus` is not a time zone I know."),
        ("hourly Europe/Berln", "`Europe/Berln` is not a time zone I know."),
        ('cron "0 */4 * *"', "it has 4 fields, not five"),
        ('cron "0 */x * * *"', "its hour field `*/x` is wrong"),
        ('cron "61 * * * *"', "its minute field `61` is wrong"),
        ('cron "0 0 31 2 *"', "never fires"),
        ('cron "0 9 * * 8"', "its day-of-week field `8` is wrong"),
        ('cron "0 9 1 * 1"', "names both days of the month and days of the week"),
        ("cron", "`cron` needs an expression."),
        ("fortnightly", "`fortnightly` is not a schedule I know."),
        ("daily 09:00 UTC tomorrow", "I did not understand `tomorrow`"),
        ("", "Say when the digest should be posted."),
    ],
)
def test_bad_schedules_say_what_is_wrong(typed: str, message: str) -> None:
    """Each mistake gets a plain message naming the wrong part, with a hint."""
    with pytest.raises(UsageError) as caught:
        parse_schedule_text(typed)
    assert message in caught.value.user_message
    assert caught.value.hint


def test_close_zone_and_frequency_get_a_suggestion() -> None:
    """A typo in a zone or a frequency suggests the likely one."""
    with pytest.raises(UsageError) as zone:
        parse_schedule(["daily", "09:00", "Europe/Berln"])
    assert zone.value.hint == "Did you mean `Europe/Berlin`?"
    with pytest.raises(UsageError) as frequency:
        parse_schedule(["dialy", "09:00"])
    assert "Did you mean `daily`?" in (frequency.value.hint or "")


def test_daily_keeps_local_time_across_both_berlin_changes() -> None:
    """09:00 Berlin stays 09:00 local: 08:00 UTC in winter, 07:00 UTC in summer."""
    schedule = parse_schedule_text("daily 09:00 Europe/Berlin")
    spring = next_runs(schedule, utc(2026, 3, 27, 12, 0), 3)
    assert local(spring, BERLIN) == [
        "Sat 03-28 09:00+0100",
        "Sun 03-29 09:00+0200",
        "Mon 03-30 09:00+0200",
    ]
    assert [run.hour for run in spring] == [8, 7, 7]
    autumn = next_runs(schedule, utc(2026, 10, 24, 12, 0), 2)
    assert local(autumn, BERLIN) == ["Sun 10-25 09:00+0100", "Mon 10-26 09:00+0100"]
    assert [run.hour for run in autumn] == [8, 8]


def test_the_same_schedule_fires_at_different_instants_in_two_zones() -> None:
    """daily 09:00 in Berlin and in New York: six (or five) hours apart, each local 09:00."""
    after = utc(2026, 3, 10, 12, 0)  # New York already on summer time, Berlin not yet
    berlin = next_runs(parse_schedule_text("daily 09:00 Europe/Berlin"), after, 1)
    new_york = next_runs(parse_schedule_text("daily 09:00 America/New_York"), after, 1)
    assert berlin == [utc(2026, 3, 11, 8, 0)]
    assert new_york == [utc(2026, 3, 10, 13, 0)]
    later = utc(2026, 4, 10, 12, 0)  # both on summer time
    assert next_runs(parse_schedule_text("daily 09:00 Europe/Berlin"), later, 1)[0].hour == 7
    assert next_runs(parse_schedule_text("daily 09:00 America/New_York"), later, 1)[0].hour == 13


def test_a_time_the_clock_skips_fires_once_an_hour_later() -> None:
    """02:30 does not exist in Berlin on 2026-03-29: that day it fires at 03:30 local."""
    runs = next_runs(parse_schedule_text("daily 02:30 Europe/Berlin"), utc(2026, 3, 28, 12, 0), 2)
    assert runs == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]


def test_a_time_the_clock_repeats_fires_once() -> None:
    """01:30 happens twice in New York on 2026-11-01; the digest is posted once."""
    schedule = parse_schedule_text("daily 01:30 America/New_York")
    runs = next_runs(schedule, utc(2026, 10, 31, 12, 0), 3)
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30), utc(2026, 11, 3, 6, 30)]
    berlin = next_runs(parse_schedule_text("daily 02:30 Europe/Berlin"), utc(2026, 10, 24, 12), 2)
    assert berlin == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_hourly_fires_every_real_hour_across_both_changes() -> None:
    """Hourly in Berlin: no gap when an hour is skipped, no double when one is repeated."""
    schedule = parse_schedule_text("hourly Europe/Berlin")
    spring = next_runs(schedule, utc(2026, 3, 28, 23, 30), 4)
    assert spring == [utc(2026, 3, 29, hour, 0) for hour in range(4)]
    assert local(spring, BERLIN)[:2] == ["Sun 03-29 01:00+0100", "Sun 03-29 03:00+0200"]
    autumn = next_runs(schedule, utc(2026, 10, 24, 23, 30), 4)
    assert autumn == [utc(2026, 10, 25, hour, 0) for hour in range(4)]
    assert local(autumn, BERLIN)[:2] == ["Sun 10-25 02:00+0200", "Sun 10-25 02:00+0100"]


def test_hourly_in_a_half_hour_zone_fires_at_half_past_utc() -> None:
    """On the hour in Kolkata (UTC+05:30) is half past in UTC."""
    runs = next_runs(parse_schedule_text("hourly Asia/Kolkata"), utc(2026, 1, 1, 0, 0), 2)
    assert runs == [utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 1, 30)]


def test_weekdays_skip_the_weekend_in_local_time() -> None:
    """Weekdays 08:30 New York: Friday, then Monday, across the 2026-03-08 change."""
    schedule = parse_schedule_text("weekdays 08:30 America/New_York")
    runs = next_runs(schedule, utc(2026, 3, 6, 0, 0), 3)
    assert local(runs, NEW_YORK) == [
        "Fri 03-06 08:30-0500",
        "Mon 03-09 08:30-0400",
        "Tue 03-10 08:30-0400",
    ]
    assert runs[0] == utc(2026, 3, 6, 13, 30)
    assert runs[1] == utc(2026, 3, 9, 12, 30)


def test_cron_follows_local_hours_across_the_new_york_change() -> None:
    """Every fourth local hour: the UTC gaps stretch to five hours over the change."""
    schedule = parse_schedule_text('cron "0 */4 * * *" America/New_York')
    runs = next_runs(schedule, utc(2026, 3, 8, 0, 0), 4)
    assert local(runs, NEW_YORK) == [
        "Sat 03-07 20:00-0500",
        "Sun 03-08 00:00-0500",
        "Sun 03-08 04:00-0400",
        "Sun 03-08 08:00-0400",
    ]
    assert runs[2] - runs[1] == timedelta(hours=3)


def test_cron_in_utc_ignores_daylight_saving() -> None:
    """A UTC cron is the same every day of the year."""
    schedule = parse_schedule_text('cron "15 6 * * 1"')
    assert next_runs(schedule, utc(2026, 3, 28, 0, 0), 2) == [
        utc(2026, 3, 30, 6, 15),
        utc(2026, 4, 6, 6, 15),
    ]


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", "*"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1-5/2", "mon,wed,fri"),
        ("sat,SUN", "sun,sat"),
    ],
)
def test_cron_days_of_the_week_keep_their_cron_meaning(field: str, days: str) -> None:
    """Cron counts Sunday as 0 (or 7); the trigger gets the days by name."""
    assert cron_weekdays(field) == days


def test_cron_weekdays_fire_monday_to_friday() -> None:
    """`1-5` is Monday to Friday, as in every crontab."""
    runs = next_runs(parse_schedule_text('cron "0 9 * * 1-5"'), utc(2026, 5, 1, 12, 0), 2)
    assert [run.strftime("%a") for run in runs] == ["Mon", "Tue"]


def test_latest_run_looks_back_only_within_the_window() -> None:
    """The last fire time before now counts only if it is within the window."""
    schedule = parse_schedule_text('cron "*/5 * * * *"')
    now = utc(2026, 5, 1, 9, 12)
    assert latest_run(schedule, now, timedelta(minutes=15)) == utc(2026, 5, 1, 9, 10)
    daily = parse_schedule_text("daily 09:00")
    assert latest_run(daily, now, timedelta(minutes=15)) == utc(2026, 5, 1, 9, 0)
    assert latest_run(daily, now, timedelta(minutes=10)) is None
    assert fires_at(daily, utc(2026, 5, 1, 9, 0))
    assert not fires_at(daily, utc(2026, 5, 1, 9, 1))
