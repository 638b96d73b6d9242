"""Durations as people write them in pool files: "500ms", "30s", "5m", "2h" (or a bare number of seconds)."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
ALLOWED = 'a duration such as "500ms", "30s", "5m", "2h" or a number of seconds'


def parse_duration(value: object) -> float:
    """Seconds from a duration string or number; ValueError names what is allowed."""
    if isinstance(value, bool):
        raise ValueError(ALLOWED)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{ALLOWED}, finite and not negative")
        return float(value)
    if isinstance(value, str):
        m = _RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(ALLOWED)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling that parse_duration reads back to the same value."""
    ms = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
