"""Counting delays in working hours (team hours, weekdays, holidays, a person's time zone) or calendar hours.

Plain Python: the clock and the time zone are given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

HoursKind = Literal["working", "calendar"]
# A calendar with no working day for this long is a configuration that can never be satisfied.
SEARCH_LIMIT_DAYS = 3660
# Working days found from a date, kept per calendar: a bound on memory, however long a service runs.
REMEMBERED_DAYS = 4096


class Hours(Protocol):
    def add(self, start: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``start`` plus ``delay``, as an aware UTC datetime."""
        ...

    def before(self, end: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``delay`` before ``end``, as an aware UTC datetime."""
        ...


class CalendarHours:
    """Every hour counts: nights, weekends and holidays too."""

    def add(self, start: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``start`` plus ``delay`` of wall time."""
        return (start + delay).astimezone(UTC)

    def before(self, end: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``end`` minus ``delay`` of wall time."""
        return (end - delay).astimezone(UTC)


@dataclass(frozen=True)
class WorkingHours:
    """The team's working day (``start`` to ``end`` on ``weekdays``, Monday 0) minus ``holidays``."""

    start: time = time(9)
    end: time = time(17)
    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = field(default_factory=frozenset)
    _days_after: dict[tuple[date, int, int], date] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"working hours must start before they end ({self.start:%H:%M}-{self.end:%H:%M})")
        if not self.weekdays or not self.weekdays <= set(range(7)):
            raise ValueError("working days must name at least one day of the week")

    def is_working_day(self, day: date) -> bool:
        """Whether people work on ``day`` at all."""
        return day.weekday() in self.weekdays and day not in self.holidays

    def is_working_time(self, moment: datetime, *, zone: ZoneInfo) -> bool:
        """Whether ``moment`` falls inside working hours in ``zone``."""
        local = moment.astimezone(zone)
        return self.is_working_day(local.date()) and self.start <= local.time() < self.end

    def add(self, start: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``start`` plus ``delay`` of working time in ``zone``: Friday 17:00 plus 2 hours is Monday 11:00."""
        return self._count(start, delay, zone, forward=True)

    def before(self, end: datetime, delay: timedelta, *, zone: ZoneInfo) -> datetime:
        """``delay`` of working time before ``end`` in ``zone``: 2 hours before Monday 09:00 is Friday 15:00."""
        return self._count(end, delay, zone, forward=False)

    @cached_property
    def _day_length(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)

    def _count(self, moment: datetime, delay: timedelta, zone: ZoneInfo, *, forward: bool) -> datetime:
        """Walk ``delay`` of working time from ``moment``, forwards or backwards: what is left of the working
        period it falls in (or the next one), then whole working days, the last part counted from the start (or
        back from the end) of the working day it ends in. Arithmetic is wall time in ``zone``, as a person
        there reads a due time."""
        if delay <= timedelta(0):
            return moment.astimezone(UTC)
        local = moment.astimezone(zone)
        if forward:
            cursor = self._next_working_moment(local, zone)
            left_today = datetime.combine(cursor.date(), self.end, tzinfo=zone) - cursor
        else:
            cursor = self._previous_working_moment(local, zone)
            left_today = cursor - datetime.combine(cursor.date(), self.start, tzinfo=zone)
        sign = 1 if forward else -1
        if delay <= left_today:
            return (cursor + sign * delay).astimezone(UTC)
        # What is left fills whole working days, and ends ``last`` into the one after them (a delay that ends
        # exactly at a day's end ends there, not at the next day's start).
        whole_days, last = divmod(delay - left_today, self._day_length)
        if not last:
            whole_days, last = whole_days - 1, self._day_length
        day = self._working_day_after(cursor.date(), step=sign, count=whole_days + 1)
        edge = datetime.combine(day, self.start if forward else self.end, tzinfo=zone)
        return (edge + sign * last).astimezone(UTC)

    def _working_day_after(self, day: date, *, step: int, count: int = 1) -> date:
        """The ``count``-th working day after ``day`` (before it, for ``step`` -1). Remembered: the cases of a
        day all count from the same few dates."""
        key = (day, step, count)
        if (found := self._days_after.get(key)) is not None:
            return found
        candidate, left, searched_from = day, count, day
        while left:
            candidate += timedelta(days=step)
            if self.is_working_day(candidate):
                left, searched_from = left - 1, candidate
            elif abs(candidate - searched_from).days >= SEARCH_LIMIT_DAYS:
                where = "of" if step > 0 else "before"
                raise ValueError(f"no working day within {SEARCH_LIMIT_DAYS} days {where} {searched_from}")
        if len(self._days_after) >= REMEMBERED_DAYS:
            self._days_after.clear()
        self._days_after[key] = candidate
        return candidate

    def _previous_working_moment(self, local: datetime, zone: ZoneInfo) -> datetime:
        """``local`` itself when it is working time (or its end), else the end of the previous working period."""
        day = local.date()
        if self.is_working_day(day) and local.time() > self.start:
            return min(local, datetime.combine(day, self.end, tzinfo=zone))
        return datetime.combine(self._working_day_after(day, step=-1), self.end, tzinfo=zone)

    def _next_working_moment(self, local: datetime, zone: ZoneInfo) -> datetime:
        """``local`` itself when it is working time, else the start of the next working period."""
        day = local.date()
        if self.is_working_day(day) and local.time() < self.end:
            return max(local, datetime.combine(day, self.start, tzinfo=zone))
        return datetime.combine(self._working_day_after(day, step=1), self.start, tzinfo=zone)


def hours_for(kind: HoursKind, working: WorkingHours) -> Hours:
    """The counting a playbook asks for: working hours by default, calendar hours when time presses."""
    return CalendarHours() if kind == "calendar" else working


def zone_named(name: str | None, *, default: ZoneInfo) -> ZoneInfo:
    """A person's time zone, or ``default`` when they have none (or one this system does not know)."""
    if not name:
        return default
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return default


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_working_hours(span: str, *, days: list[str], holidays: list[str]) -> WorkingHours:
    """Working hours from settings text (``09:00-17:00``, ``mon,tue``, ``2026-12-25``); ValueError names the bad part."""
    try:
        start_text, end_text = span.split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise ValueError(f"working hours {span!r} are not HH:MM-HH:MM") from None
    unknown = [day for day in days if day.lower() not in DAY_NAMES]
    if unknown:
        raise ValueError(f"working day {unknown[0]!r} is not one of {', '.join(DAY_NAMES)}")
    try:
        holiday_dates = frozenset(date.fromisoformat(day) for day in holidays)
    except ValueError as error:
        raise ValueError(f"holiday list: {error} (dates are YYYY-MM-DD)") from None
    return WorkingHours(
        start=start,
        end=end,
        weekdays=frozenset(DAY_NAMES.index(day.lower()) for day in days),
        holidays=holiday_dates,
    )
