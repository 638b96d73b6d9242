"""Plain data on the wire: member and pool states, claims, snapshots, events, reports. Shared by the engine,
the server, the client and the console; it knows nothing of providers (core/member.py is the engine's own)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


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
    lease_expires_at: float | None = None

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
    lease_expires_at: float | None = None  # wall time the claim ends unless renewed (None: no lease)
    # Allows exec, files, renew and release of this sandbox and nothing else (a secret: never logged, not in
    # repr). None for a claim adopted after a restart and asked for again by its claim_key.
    token: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        # Spelled out, not asdict(): this is on every claim's answer, and asdict copies recursively.
        return {"id": self.id, "pool": self.pool, "url": self.url, "expires_at": self.expires_at,
                "warm": self.warm, "latency": self.latency, "claim_key": self.claim_key, "reason": self.reason,
                "lease_expires_at": self.lease_expires_at, "latency_ms": round(self.latency * 1000, 3),
                "token": self.token}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        latency = d.get("latency", (d.get("latency_ms") or 0) / 1000)
        return cls(
            id=d["id"], pool=d.get("pool", ""), url=d["url"], expires_at=d["expires_at"], warm=d["warm"],
            latency=latency, claim_key=d.get("claim_key"), reason=d.get("reason", ""),
            lease_expires_at=d.get("lease_expires_at"), token=d.get("token"),
        )


@dataclass
class Lease:
    """A claim's lease after a renew: it ends at lease_expires_at unless renewed again (never after the
    sandbox's own expires_at)."""

    id: str
    pool: str
    lease_expires_at: float
    expires_at: float
    claim_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Lease:
        return cls(**_known_fields(cls, d))


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
    # What protects the sandboxes (network, uid, seccomp, disk), from providers that say: the local one.
    shield: dict[str, Any] | None = None
    longest_wait: float | None = None  # seconds the longest-waiting claimer has waited (None: none waits)
    near_ttl: int = 0  # ready or claimed sandboxes with less than min_remaining_ttl left
    setpoint: int | None = None  # ready sandboxes refill aims at now (core/sizing.py); None: an older server
    sizing: str = "static"  # who sets it: static (target_ready), manual (a resize, until resume) or autoscale

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
        values["near_ttl"] = int(d.get("near_ttl") or 0)
        values["sizing"] = d.get("sizing") or "static"
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

    def removed(self) -> int:
        return (len(self.removed_unhealthy) + len(self.removed_expiring) + len(self.removed_stale)
                + len(self.removed_strays))

    def summary(self) -> str:
        """One line for logs, the event pane and the headless CLI."""
        strays = f", {len(self.removed_strays)} strays" if self.removed_strays else ""
        return (f"probed {self.probed}, removed {len(self.removed_unhealthy)} unhealthy, "
                f"{len(self.removed_expiring)} expiring, {len(self.removed_stale)} stale{strays}; "
                f"created {self.created}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaintenanceReport:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
