"""Cron expressions for autoscale schedules: five fields (minute hour day-of-month month day-of-week) of
`*`, numbers, ranges `a-b`, steps `*/n` or `a-b/n`, and lists of them. Day-of-week 0 or 7 is Sunday. As
in Vixie cron, when both day fields are restricted a day matching either one matches.

`Cron.last(at)` is the latest minute at or before `at` that the expression matches: a schedule's rule is
in force from its last firing until another rule fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
LOOKBACK_DAYS = 366  # a rule that has not fired within a year (a 29 February) is not in force


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name} step '{step_text}' is not a whole number from 1")
        if rng == "*":
            a, b = lo, hi
        elif "-" in rng:
            first, _, last = rng.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise ValueError(f"{name} range '{rng}' is not two numbers a-b")
            a, b = int(first), int(last)
        elif rng.isdigit():
            a = b = int(rng)
            if step:
                b = hi  # "5/15": from 5 on, every 15
        else:
            raise ValueError(f"{name} '{part}' is not *, a number, a range or a step")
        if a > b:
            raise ValueError(f"{name} range '{rng}' goes backwards: expected a-b with a <= b")
        if not lo <= a <= b <= hi:
            raise ValueError(f"{name} '{part}' is out of its range {lo}-{hi}")
        out.update(range(a, b + 1, step or 1))
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """One parsed expression; `text` as written, for events and errors."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *

    @classmethod
    def parse(cls, text: str) -> Cron:
        """ValueError says which field is wrong and what is allowed."""
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"'{text}' has {len(parts)} fields: expected 5 (minute hour day-of-month month "
                             "day-of-week), e.g. \"0 9 * * 1-5\"")
        sets = [_field(p, name, lo, hi) for p, (name, lo, hi) in zip(parts, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(text, sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def _day(self, d: datetime) -> bool:
        if d.month not in self.months:
            return False
        dom, dow = d.day in self.days, (d.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def last(self, at: datetime) -> datetime | None:
        """The latest matching minute at or before `at` (None: none within LOOKBACK_DAYS)."""
        at = at.replace(second=0, microsecond=0)
        day = at.replace(hour=0, minute=0)
        for back in range(LOOKBACK_DAYS + 1):
            d = day - timedelta(days=back)
            if not self._day(d):
                continue
            for h in sorted(self.hours, reverse=True):
                for m in sorted(self.minutes, reverse=True):
                    t = d.replace(hour=h, minute=m)
                    if t <= at:
                        return t
        return None
