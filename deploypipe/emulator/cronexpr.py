"""Cron expressions as Render's cron jobs read them: five fields, UTC, and the next moment one is due.

``minute hour day-of-month month day-of-week``; each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or
``a-b/n``, or a comma-separated list of those; months and weekdays may be named (``JAN``, ``MON-FRI``); weekday 0
and 7 are Sunday. As in cron, when both day fields are restricted a day matching either is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["CronSchedule"]

_NAMES = {3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
          4: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_HORIZON_DAYS = 366 * 5  # Feb 29 on a Monday comes back within this


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index)
    if names and text.upper() in names:
        return names.index(text.upper()) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise ValueError(f"{_FIELDS[index]}: {text!r} is not a number")
    return int(text)


def _field(text: str, index: int) -> frozenset[int]:
    low, high = _BOUNDS[index]
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = _value(step_text, index) if step_text else 1
        if spec == "*":
            start, end = low, high
        elif "-" in spec:
            first, _, last = spec.partition("-")
            start, end = _value(first, index), _value(last, index)
        else:
            start = _value(spec, index)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end or step < 1:
            raise ValueError(f"{_FIELDS[index]}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression (``CronSchedule.parse("*/10 * * * MON-FRI")``)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        """The schedule of ``text``; ValueError naming the field that is wrong."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}")
        minutes, hours, days, months, weekdays = (_field(part, index) for index, part in enumerate(parts))
        return cls(text, minutes, hours, days, months, weekdays, any_day=parts[2] == "*",
                   any_weekday=parts[4] == "*")

    def _day_matches(self, moment: datetime) -> bool:
        day, weekday = moment.day in self.days, (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, epoch_s: float) -> float | None:
        """The first whole minute after ``epoch_s`` (UTC) when the schedule is due; None if it never is."""
        moment = datetime.fromtimestamp(epoch_s, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = moment + timedelta(days=_HORIZON_DAYS)
        while moment < end:
            if moment.month not in self.months or not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0)
            elif moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment.timestamp()
        return None
