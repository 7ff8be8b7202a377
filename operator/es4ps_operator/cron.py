"""Five-field cron expressions (minute hour day-of-month month day-of-week, UTC), as crontab(5) reads them.

Only what a backup schedule needs: the newest time at or before a moment that
an expression names. Fields take `*`, numbers, ranges `a-b`, steps `*/n` and
`a-b/n`, and lists of those; day-of-week 0 and 7 are Sunday. When both days
are restricted, a time matches if either does (as Vixie cron).
"""

from __future__ import annotations

import datetime

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
# How far back `previous` looks: a year holds every slot of any expression but 29 February's.
LOOKBACK_DAYS = 4 * 366


class CronError(ValueError):
    """The expression is not five valid cron fields."""


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if span == "*":
                start, end = low, high
            elif "-" in span:
                start, end = (int(bound) for bound in span.split("-", 1))
            else:
                start = end = int(span)
        except ValueError:
            raise CronError(f"the {name} field {text!r} is not a cron field") from None
        if step < 1 or not low <= start <= end <= high:
            raise CronError(f"the {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Cron:
    def __init__(self, expression: str) -> None:
        texts = expression.split()
        if len(texts) != 5:
            raise CronError("a schedule has five fields: minute hour day-of-month month day-of-week")
        self.minutes, self.hours, self.days, self.months, weekdays = (
            _field(text, name, low, high) for text, (name, low, high) in zip(texts, _FIELDS, strict=True)
        )
        self.weekdays = frozenset(day % 7 for day in weekdays)
        self.any_day, self.any_weekday = texts[2] == "*", texts[4] == "*"

    def _day_matches(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def previous(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The newest time at or before `moment` the expression names (None if none within LOOKBACK_DAYS)."""
        moment = moment.replace(second=0, microsecond=0)
        for back in range(LOOKBACK_DAYS):
            day = (moment - datetime.timedelta(days=back)).date()
            if not self._day_matches(day):
                continue
            for hour in sorted(self.hours, reverse=True):
                for minute in sorted(self.minutes, reverse=True):
                    slot = datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=moment.tzinfo)
                    if slot <= moment:
                        return slot
        return None
