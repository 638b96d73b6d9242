"""Command-line numbers with the same ranges as the pool file (argparse `type=` callables).

argparse's plain `float` takes inf, nan and negative numbers; these refuse them with the range, so
`--wait inf` is a usage error (exit 2) naming the option's allowed values instead of a wait that never ends.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from .durations import format_duration


def seconds(lo: float, hi: float) -> Callable[[str], float]:
    """A number of seconds from lo to hi."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not lo <= v <= hi:  # False for nan
            raise argparse.ArgumentTypeError(
                f"{text!r} is not allowed: expected seconds from {lo:g} to {hi:g} ({format_duration(hi)})")
        return v

    return parse


def whole(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number from lo to hi."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = lo - 1
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected a whole number from {lo} to {hi}")
        return v

    return parse
