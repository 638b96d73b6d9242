"""The operator's verbs on a whole pool: resize, drain, pause, resume. They change what the pool aims
for (the operator's sizes in pool.cfg, whether they override the sizing policy, the mode); the reconcile
loop then carries it out through the Pool."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import PoolConfig, resized
from ..errors import InvalidRequest

if TYPE_CHECKING:
    from .pool import Pool


def resize(pool: Pool, target: int | None = None, min_ready: int | None = None,
           max_ready: int | None = None) -> PoolConfig:
    """New sizes, checked by the pool file's own rule; InvalidRequest says what is wrong. A target set
    here is the setpoint (within the new min and max) until the pool is resumed; new bounds alone leave
    the sizing policy in charge."""
    old = pool.sizing.setpoint(pool.cfg)
    pool.cfg = new = resized(pool.cfg, target, min_ready, max_ready)
    if target is not None:
        pool.sizing.resized()
    # the trim then says "after resize"
    pool.lowered_target = pool.lowered_target or pool.sizing.setpoint(new) < old
    pool.emit("resized", None, f"target {new.target_ready}, min {new.min_ready}, max {new.max_ready}")
    pool.reconcile()
    return new


def drain(pool: Pool) -> None:
    """No new claims; ready and starting members retired; claimed ones left to finish."""
    if pool.mode == "draining":
        return
    pool.mode = "draining"
    pool.drained_said = False
    pool.emit("draining", None, "no new claims; ready sandboxes retired; claimed ones left to finish")
    pool.reconcile()


def pause(pool: Pool) -> None:
    """Claims are served, nothing is refilled."""
    if pool.mode == "draining":
        raise InvalidRequest(f"pool '{pool.name}' is draining; resume it first")
    pool.mode = "paused"
    pool.emit("paused", None, "claims served, no refill")


def resume(pool: Pool) -> None:
    """Undo pause or drain, and hand sizing back to the pool's policy after a resize."""
    was = pool.mode
    pool.mode = "normal"
    pool.sizing.resumed()
    pool.emit("resumed", None, f"was {was}")
    pool.kick()
