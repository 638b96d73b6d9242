"""The size rule, written once for the pool file, the engine's resize and the console's dialog:
min_ready <= target_ready <= max_ready <= max_total, each a whole number from 0 to MAX_SIZE."""

from __future__ import annotations

from dataclasses import replace

from ..bounds import MAX_SIZE
from ..errors import InvalidRequest
from .model import PoolConfig


def size_problem(min_ready: int, target_ready: int, max_ready: int, max_total: int) -> str:
    """'' when the sizes fit together, else what is wrong and what is allowed."""
    if not min_ready <= target_ready <= max_ready:
        return (f"min_ready = {min_ready}, target_ready = {target_ready}, max_ready = {max_ready} are not "
                "allowed: expected min_ready <= target_ready <= max_ready")
    if max_ready > max_total:
        return f"max_ready = {max_ready} is not allowed: expected at most max_total = {max_total}"
    return ""


def value_problem(key: str, value: object, lo: int = 0, hi: int = MAX_SIZE) -> str:
    """'' for a whole number in [lo, hi] (a bool is not a number), else what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        return f"{key} = {value!r} is not allowed: expected a whole number from {lo} to {hi}"
    return ""


def resized(cfg: PoolConfig, target: int | None, min_ready: int | None, max_ready: int | None) -> PoolConfig:
    """cfg with new sizes (None keeps one); InvalidRequest names what is wrong and what is allowed."""
    for key, v in (("target", target), ("min_ready", min_ready), ("max_ready", max_ready)):
        if v is not None and (problem := value_problem(key, v)):
            raise InvalidRequest(f"pool '{cfg.name}': {problem}")
    new = replace(
        cfg,
        target_ready=cfg.target_ready if target is None else target,
        min_ready=cfg.min_ready if min_ready is None else min_ready,
        max_ready=cfg.max_ready if max_ready is None else max_ready,
    )
    if problem := size_problem(new.min_ready, new.target_ready, new.max_ready, new.max_total):
        raise InvalidRequest(f"pool '{cfg.name}': {problem}")
    return new
