"""Plain data: member and pool states, claims, snapshots and events. Shared by engine, server, client and UI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from ..providers.base import Sandbox


def _known_fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """A dataclass's fields from a JSON object: keys it does not have are dropped, missing ones are None
    (a newer server may send more, an older one less)."""
    return {f.name: d.get(f.name) for f in fields(cls)}


class MemberState(StrEnum):
    CREATING = "creating"
    STARTING = "starting"  # created, readiness being probed
    READY = "ready"
    CLAIMED = "claimed"
    FAILED = "failed"
    TERMINATING = "terminating"
    GONE = "gone"


class PoolState(StrEnum):
    WARMING = "warming"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    PAUSED = "paused"
    DRAINING = "draining"
    DRAINED = "drained"


@dataclass(eq=False)
class Member:
    """One sandbox as the engine sees it. Mutated only by core/pool.py."""

    id: str
    pool: str
    revision: str
    state: MemberState = MemberState.CREATING
    created_at: float = 0.0  # wall
    ready_at: float | None = None
    claimed_at: float | None = None
    expires_at: float = 0.0  # wall, for people
    expires_mono: float = 0.0  # monotonic, for deadlines
    created_mono: float = 0.0
    sandbox: Sandbox | None = None
    health_ok: bool | None = None
    health_detail: str = ""
    last_probe_at: float | None = None
    claim_key: str | None = None
    reason: str = ""  # why it is terminating / failed
    adopted: bool = False
    doomed: bool = False  # asked to go while its create was still running
    holders: int = 0  # how many claimers hold it: the double hand-out oracle, must stay <= 1
    view: MemberView | None = None  # the last view made of it; dropped on every change (snapshots reuse it)

    @property
    def url(self) -> str:
        return self.sandbox.url if self.sandbox else ""


@dataclass
class MemberView:
    id: str
    state: str
    url: str
    created_at: float
    ready_at: float | None
    claimed_at: float | None
    expires_at: float
    ttl_left: float
    health: str  # "ok", "failing", "unknown"
    health_detail: str
    last_probe_at: float | None
    claim_key: str | None
    reason: str
    adopted: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MemberView:
        return cls(**_known_fields(cls, d))


@dataclass
class Claim:
    id: str
    pool: str
    url: str
    expires_at: float
    warm: bool
    latency: float  # seconds from asking to getting
    claim_key: str | None = None
    reason: str = ""  # why it was cold, when it was

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["latency_ms"] = round(self.latency * 1000, 3)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        latency = d.get("latency", (d.get("latency_ms") or 0) / 1000)
        return cls(
            id=d["id"], pool=d.get("pool", ""), url=d["url"], expires_at=d["expires_at"], warm=d["warm"],
            latency=latency, claim_key=d.get("claim_key"), reason=d.get("reason", ""),
        )


@dataclass
class PoolSnapshot:
    name: str
    provider: str
    isolation: str
    state: str
    reason: str
    target_ready: int
    min_ready: int
    max_ready: int
    max_total: int
    counts: dict[str, int]
    waiting: int
    members: list[MemberView]
    metrics: dict[str, Any]
    config: dict[str, Any]
    taken_at: float
    read_only: bool = False

    @property
    def ready(self) -> int:
        return self.counts.get("ready", 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoolSnapshot:
        values = _known_fields(cls, d)
        values["members"] = [MemberView.from_dict(m) for m in d.get("members", [])]
        values["read_only"] = bool(d.get("read_only", False))
        return cls(**values)


@dataclass
class Event:
    seq: int
    ts: float  # wall
    pool: str
    kind: str  # created, ready, claimed, released, terminated, probe_failed, degraded, resized, ...
    member_id: str | None = None
    state: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        return cls(**_known_fields(cls, d))


@dataclass
class MaintenanceReport:
    pool: str
    removed_expiring: list[str] = field(default_factory=list)
    removed_unhealthy: list[str] = field(default_factory=list)
    removed_stale: list[str] = field(default_factory=list)
    removed_strays: list[str] = field(default_factory=list)  # running, ours by marker, unknown to the pool
    probed: int = 0
    created: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaintenanceReport:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
