"""Prometheus text exposition (format 0.0.4) built from pool snapshots; no client library needed."""

from __future__ import annotations

from typing import Any

from ..core.model import MemberState, PoolSnapshot, PoolState
from .state import StreamStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items()) + "}"


def _num(v: float | int | None) -> str:
    if v is None:
        return "NaN"
    if isinstance(v, float) and v == float("inf"):
        return "+Inf"
    return repr(v) if isinstance(v, float) else str(v)


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def declare(self, name: str, kind: str, help_: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self.lines.append(f"# HELP {name} {help_}")
            self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float | int | None, **labels: object) -> None:
        self.lines.append(f"{name}{_labels(**labels) if labels else ''} {_num(value)}")

    def histogram(self, name: str, help_: str, summary: dict[str, Any], **labels: object) -> None:
        self.declare(name, "histogram", help_)
        for le, count in summary.get("buckets", []):
            bound = "+Inf" if le == "+Inf" else _num(float(le))
            self.sample(f"{name}_bucket", count, **labels, le=bound)
        self.sample(f"{name}_sum", float(summary.get("sum", 0.0)), **labels)
        self.sample(f"{name}_count", int(summary.get("count", 0)), **labels)


def render(snapshots: list[PoolSnapshot], stats: StreamStats) -> str:
    out = _Out()
    for s in snapshots:
        out.declare("poolui_members", "gauge", "Sandboxes by state.")
        for state in MemberState:
            if state is not MemberState.GONE:
                out.sample("poolui_members", s.counts.get(state.value, 0), pool=s.name, state=state.value)
    for s in snapshots:
        out.declare("poolui_pool_state", "gauge", "1 for the state the pool is in, 0 for the others.")
        for ps in PoolState:
            out.sample("poolui_pool_state", int(s.state == ps.value), pool=s.name, state=ps.value)
    sizes = (("poolui_target_ready", "target_ready", "Ready sandboxes the pool keeps."),
             ("poolui_min_ready", "min_ready", "Ready sandboxes below which the pool is critical."),
             ("poolui_max_ready", "max_ready", "Most ready sandboxes the pool may keep."),
             ("poolui_max_total", "max_total", "Most sandboxes the pool may have at once."),
             ("poolui_waiting_claims", "waiting", "Claimers waiting for a sandbox."))
    for name, attr, help_ in sizes:
        out.declare(name, "gauge", help_)
        for s in snapshots:
            out.sample(name, getattr(s, attr), pool=s.name)
    out.declare("poolui_claims_total", "counter", "Claims by outcome (warm, cold, failed, timed_out) and reason.")
    for s in snapshots:
        rows = s.metrics.get("claims_by_reason", [])
        seen = {r["outcome"] for r in rows}
        for row in rows:
            out.sample("poolui_claims_total", row["count"], pool=s.name, outcome=row["outcome"],
                       reason=row["reason"])
        for outcome in ("warm", "cold", "failed", "timed_out"):
            if outcome not in seen:  # every series exists from the start, so rate() works on the first claim
                out.sample("poolui_claims_total", 0, pool=s.name, outcome=outcome, reason="")
    counters = (("poolui_creates_total", "creates", "Sandboxes asked of the provider."),
                ("poolui_create_failures_total", "create_failures", "Creates or readiness waits that failed."),
                ("poolui_terminated_total", "terminated", "Sandboxes terminated."),
                ("poolui_leases_expired_total", "leases_expired", "Claims ended because their lease was not renewed."))
    for name, key, help_ in counters:
        out.declare(name, "counter", help_)
        for s in snapshots:
            out.sample(name, s.metrics.get(key, 0), pool=s.name)
    for s in snapshots:
        out.histogram("poolui_claim_latency_seconds", "Time from asking for a sandbox to getting one.",
                      s.metrics.get("claim_latency", {}), pool=s.name)
    for s in snapshots:
        out.histogram("poolui_create_to_ready_seconds", "Time from create to passing readiness.",
                      s.metrics.get("create_to_ready", {}), pool=s.name)
    out.declare("poolui_event_clients", "gauge", "Clients on /events now.")
    out.sample("poolui_event_clients", stats.open)
    out.declare("poolui_event_clients_dropped_total", "counter", "Events clients dropped for not keeping up.")
    out.sample("poolui_event_clients_dropped_total", stats.dropped)
    return "\n".join(out.lines) + "\n"
