"""Reading one TOML table with errors that name where, the key, the value and what is allowed.

The pool file's own tables and every provider's [pools.NAME.PROVIDER] table are read with it.
"""

from __future__ import annotations

import math
import re
from typing import Any, overload

from ..durations import ALLOWED as DURATION_ALLOWED
from ..durations import format_duration, parse_duration
from ..errors import ConfigError


class TableReader:
    """One TOML table being read: every key read is ticked off; the rest are unknown keys."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def error(self, key: str, value: object, allowed: str) -> ConfigError:
        return ConfigError(f"{self.where}: key '{key}' = {value!r} is not allowed: expected {allowed}")

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def int_(self, key: str, default: int, minimum: int = 0, *, maximum: int) -> int:
        """A whole number from minimum to maximum (every number has a range: none may be open-ended)."""
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
            raise self.error(key, v, f"a whole number from {minimum} to {maximum}")
        return v

    def opt_int(self, key: str, lo: int, hi: int) -> int | None:
        """A whole number from lo to hi, or None when the key is absent."""
        if self.get(key) is None:
            return None
        return self.int_(key, 0, lo, maximum=hi)

    def float_(self, key: str, default: float, lo: float, hi: float) -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
            raise self.error(key, v, f"a number from {lo} to {hi}")
        return float(v)

    def duration(self, key: str, default: float, minimum: float = 0.0, *, maximum: float) -> float:
        """Seconds from a duration (see parse_duration) within minimum..maximum; inf and nan never pass."""
        v = self.get(key, default)
        try:
            seconds = parse_duration(v)
        except ValueError:
            seconds = math.nan  # unreadable, inf and nan get the same answer as out of range
        if not minimum <= seconds <= maximum:  # False for nan too
            raise self.error(key, v, f"{DURATION_ALLOWED}, from {format_duration(minimum)} to "
                                     f"{format_duration(maximum)}")
        return seconds

    @overload
    def size(self, key: str, default: int, *, maximum: int = ...) -> int: ...
    @overload
    def size(self, key: str, default: None = None, *, maximum: int = ...) -> int | None: ...
    def size(self, key: str, default: int | None = None, *, maximum: int = 1 << 40) -> int | None:
        """Bytes (see parse_size) up to maximum, or None when the key is absent and there is no default."""
        v = self.get(key, default)
        if v is None:
            return None
        try:
            n = parse_size(v)
        except ValueError as e:
            raise self.error(key, v, f"{e}, up to {_size_text(maximum)}") from None
        if n > maximum:
            raise self.error(key, v, f"a size up to {_size_text(maximum)}")
        return n

    def str_(self, key: str, default: str, choices: tuple[str, ...] | None = None, *, nonempty: bool = False) -> str:
        v = self.get(key, default)
        if not isinstance(v, str) or (choices and v not in choices) or (nonempty and not v):
            if choices:
                allowed = "one of " + ", ".join(f'"{c}"' for c in choices)
            else:
                allowed = "a non-empty string" if nonempty else "a string"
            raise self.error(key, v, allowed)
        return v

    def opt_str(self, key: str, allowed: str) -> str | None:
        """A non-empty string, or None when the key is absent."""
        v = self.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            raise self.error(key, v, allowed)
        return v

    def bool_(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, v, "true or false")
        return v

    def argv(
        self, key: str, default: tuple[str, ...] = (), example: str = '["python3", "-m", "http.server"]'
    ) -> tuple[str, ...]:
        v = self.get(key, list(default))
        if isinstance(v, str):
            v = v.split()
        if not isinstance(v, list) or not v or not all(isinstance(a, str) and a for a in v):
            raise self.error(key, v, f"a non-empty list of strings (an argv), e.g. {example}")
        return tuple(v)

    def str_list(self, key: str, default: tuple[str, ...], allowed: str) -> tuple[str, ...]:
        """A list of non-empty strings."""
        v = self.get(key, list(default))
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.error(key, v, allowed)
        return tuple(v)

    def str_map(self, key: str, key_re: re.Pattern[str] | None, allowed: str) -> dict[str, str]:
        """A table of strings whose keys match key_re (from their start); empty when absent."""
        v = self.get(key, {})
        ok = isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        if not ok or (key_re and not all(key_re.match(k) for k in v)):
            raise self.error(key, v, allowed)
        return dict(v)

    def sub(self, key: str) -> TableReader | None:
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.error(key, v, "a table")
        return TableReader(v, f"{self.where}.{key}")

    def finish(self, allowed: tuple[str, ...], *, sort: bool = True) -> None:
        """Refuse unknown keys; the message lists the known ones, sorted or (sort=False) allowed's order first."""
        unknown = sorted(set(self.data) - self.seen - set(allowed))
        if unknown:
            known = sorted(self.seen | set(allowed)) if sort else [*allowed, *sorted(self.seen - set(allowed))]
            key = unknown[0]
            raise ConfigError(
                f"{self.where}: unknown key '{key}' = {self.data[key]!r}; allowed keys: {', '.join(known)}")


def parse_size(value: object) -> int:
    """Bytes from 256, "256MiB", "1G", "512k"."""
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        s = value.strip().lower().removesuffix("b").removesuffix("i")
        num = s.rstrip("kmg")
        unit = s[len(num):]
        try:
            n = float(num)
        except ValueError:
            n = -1
        if math.isfinite(n) and n > 0 and unit in units:
            return int(n * units[unit])
    raise ValueError('a size such as "256MiB", "1GiB" or a number of bytes')


def _size_text(n: int) -> str:
    """A size as the pool file would write it."""
    return f"{n >> 30}GiB" if n % (1 << 30) == 0 else f"{n >> 20}MiB"
