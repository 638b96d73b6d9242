"""/metrics: the pools in Prometheus text format, written by prometheus-client from pool snapshots.

Each scrape builds metric families from the snapshots it is given (a collector, not live metric objects):
the engine keeps its own counters (core/metrics.py) and knows nothing of Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.model import MemberState, PoolSnapshot, PoolState
from .state import StreamStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SIZES = (("poolui_target_ready", "target_ready", "Ready sandboxes the pool keeps."),
         ("poolui_min_ready", "min_ready", "Ready sandboxes below which the pool is critical."),
         ("poolui_max_ready", "max_ready", "Most ready sandboxes the pool may keep."),
         ("poolui_max_total", "max_total", "Most sandboxes the pool may have at once."),
         ("poolui_waiting_claims", "waiting", "Claimers waiting for a sandbox."),
         ("poolui_near_ttl", "near_ttl", "Ready or claimed sandboxes with less than min_remaining_ttl left."))
COUNTERS = (("poolui_creates", "creates", "Sandboxes asked of the provider."),
            ("poolui_create_failures", "create_failures", "Creates or readiness waits that failed."),
            ("poolui_terminated", "terminated", "Sandboxes terminated."),
            ("poolui_leases_expired", "leases_expired", "Claims ended because their lease was not renewed."),
            ("poolui_execs", "execs", "Commands run in claimed sandboxes."),
            ("poolui_runs", "runs", "One-shot runs (claim, exec, release)."),
            ("poolui_resets", "resets", "Released sandboxes of reuse pools reset and made ready again."),
            ("poolui_reset_failures", "reset_failures", "Resets that failed (the sandbox was terminated)."))
HISTOGRAMS = (("poolui_claim_latency_seconds", "claim_latency", "Time from asking for a sandbox to getting one."),
              ("poolui_create_to_ready_seconds", "create_to_ready", "Time from create to passing readiness."))


class _Pools(Collector):
    def __init__(self, snapshots: list[PoolSnapshot], stats: StreamStats) -> None:
        self.snapshots = snapshots
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        snaps = self.snapshots
        members = GaugeMetricFamily("poolui_members", "Sandboxes by state.", labels=["pool", "state"])
        states = GaugeMetricFamily("poolui_pool_state", "1 for the state the pool is in, 0 for the others.",
                                   labels=["pool", "state"])
        for s in snaps:
            for ms in MemberState:
                if ms is not MemberState.GONE:
                    members.add_metric([s.name, ms.value], s.counts.get(ms.value, 0))
            for ps in PoolState:
                states.add_metric([s.name, ps.value], int(s.state == ps.value))
        yield members
        yield states
        for name, attr, help_ in SIZES:
            g = GaugeMetricFamily(name, help_, labels=["pool"])
            for s in snaps:
                g.add_metric([s.name], getattr(s, attr))
            yield g
        yield _claims(snaps)
        yield from _windows(snaps)
        yield from _sizing_and_cost(snaps)
        for name, key, help_ in COUNTERS:
            c = CounterMetricFamily(name, help_, labels=["pool"])
            for s in snaps:
                c.add_metric([s.name], s.metrics.get(key, 0))
            yield c
        for name, key, help_ in HISTOGRAMS:
            h = HistogramMetricFamily(name, help_, labels=["pool"])
            for s in snaps:
                summary: dict[str, Any] = s.metrics.get(key, {})
                buckets = [("+Inf" if le == "+Inf" else repr(float(le)), count)
                           for le, count in summary.get("buckets", [])] or [("+Inf", 0)]
                h.add_metric([s.name], buckets, float(summary.get("sum", 0.0)))
            yield h
        yield GaugeMetricFamily("poolui_event_clients", "Clients on /events now.", value=self.stats.open)
        yield CounterMetricFamily("poolui_event_clients_dropped", "Events clients dropped for not keeping up.",
                                  value=self.stats.dropped)


def _claims(snaps: list[PoolSnapshot]) -> CounterMetricFamily:
    c = CounterMetricFamily("poolui_claims", "Claims by outcome (warm, cold, failed, timed_out) and reason.",
                            labels=["pool", "outcome", "reason"])
    for s in snaps:
        rows = s.metrics.get("claims_by_reason", [])
        seen = {r["outcome"] for r in rows}
        for row in rows:
            c.add_metric([s.name, row["outcome"], row["reason"]], row["count"])
        for outcome in ("warm", "cold", "failed", "timed_out"):
            if outcome not in seen:  # every series exists from the start, so rate() works on the first claim
                c.add_metric([s.name, outcome, ""], 0)
    return c


def _windows(snaps: list[PoolSnapshot]) -> Iterator[Metric]:
    """The last minutes' claims (core/window.py), one series per window: what the console's overview and
    `check --json` show. NaN where there is nothing to measure (no claim), never a made-up 0."""
    claims = GaugeMetricFamily("poolui_window_claims", "Claims in the last window by outcome "
                               "(warm, cold, failed: refused, timed_out).", labels=["pool", "window", "outcome"])
    hit = GaugeMetricFamily("poolui_window_hit_ratio", "Warm claims out of all claims in the last window.",
                            labels=["pool", "window"])
    latency = GaugeMetricFamily("poolui_window_claim_latency_seconds", "Claim latency quantiles over the "
                                "last window (within 2%).", labels=["pool", "window", "quantile"])
    wait = GaugeMetricFamily("poolui_longest_wait_seconds", "How long the longest-waiting claimer has waited.",
                             labels=["pool"])
    for s in snaps:
        for label, w in (s.metrics.get("windows") or {}).items():
            for outcome, key in (("warm", "hits"), ("cold", "cold"), ("failed", "refusals"),
                                 ("timed_out", "timeouts")):
                claims.add_metric([s.name, label, outcome], w.get(key, 0))
            hit.add_metric([s.name, label], _or_nan(w.get("hit_rate")))
            for q in ("p50", "p99"):
                latency.add_metric([s.name, label, f"0.{q[1:]}"], _or_nan(w.get(q)))
        wait.add_metric([s.name], s.longest_wait or 0.0)  # nobody waiting has waited 0 s
    yield from (claims, hit, latency, wait)


def _sizing_and_cost(snaps: list[PoolSnapshot]) -> Iterator[Metric]:
    """The setpoint and who sets it (core/sizing.py), and the sandbox-seconds and their price (core/cost.py):
    the cost series only for a priced pool, so a sum across pools never counts an unpriced one as free."""
    setpoint = GaugeMetricFamily("poolui_setpoint", "Ready sandboxes the pool aims at now (its sizing policy's).",
                                 labels=["pool"])
    sizing = GaugeMetricFamily("poolui_sizing", "1 for who sets the setpoint (static, manual, autoscale).",
                               labels=["pool", "source"])
    seconds = CounterMetricFamily("poolui_sandbox_seconds", "Sandbox-seconds by part of a sandbox's life: warming "
                                  "(create, readiness, reset), idle (ready), claimed, ending (failed, terminating).",
                                  labels=["pool", "state"])
    price = GaugeMetricFamily("poolui_price_per_hour", "What one sandbox-hour costs (the pool file's price).",
                              labels=["pool"])
    spent = CounterMetricFamily("poolui_cost", "What the pool's sandboxes have cost, at price_per_hour.",
                                labels=["pool"])
    idle = GaugeMetricFamily("poolui_idle_cost_per_hour", "What the ready, unclaimed sandboxes cost per hour now.",
                             labels=["pool"])
    per_claim = GaugeMetricFamily("poolui_cost_per_claim", "All the sandboxes' cost over the claims handed out.",
                                  labels=["pool"])
    waste = GaugeMetricFamily("poolui_waste_ratio", "Idle sandbox-seconds out of all.", labels=["pool"])
    for s in snaps:
        if s.setpoint is not None:
            setpoint.add_metric([s.name], s.setpoint)
        for source in ("static", "manual", "autoscale"):
            sizing.add_metric([s.name, source], int(s.sizing == source))
        c = s.metrics.get("cost")
        if c is None:  # an older server
            continue
        for part, secs in c["sandbox_seconds"].items():
            seconds.add_metric([s.name, part], secs)
        waste.add_metric([s.name], _or_nan(c["waste_ratio"]))
        if c["price_per_hour"] is not None:
            price.add_metric([s.name], c["price_per_hour"])
            spent.add_metric([s.name], c["cost"])
            idle.add_metric([s.name], c["idle_cost_per_hour"])
            per_claim.add_metric([s.name], _or_nan(c["cost_per_claim"]))
    yield from (setpoint, sizing, seconds, price, spent, idle, per_claim, waste)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


STORE = (("poolui_store_journal_writes", CounterMetricFamily, "journal_writes",
          "Member rows written to the journal (each claim, release, renew and state change is one)."),
         ("poolui_store_folds", CounterMetricFamily, "folds", "Journals folded into the state file's table."),
         ("poolui_store_journal_bytes", GaugeMetricFamily, "journal_bytes", "The journal's size now."),
         ("poolui_store_commits", CounterMetricFamily, "commits", "Transactions the state file committed."),
         ("poolui_store_checkpoints", CounterMetricFamily, "checkpoints", "WAL checkpoints completed."),
         ("poolui_store_wal_peak_bytes", GaugeMetricFamily, "wal_peak_bytes", "The WAL file's largest size so far."),
         ("poolui_store_checkpoint_hold_seconds", CounterMetricFamily, "checkpoint_hold_seconds",
          "Seconds the store's writes waited for checkpoints to finish."))


class _Store(Collector):
    def __init__(self, stats: dict[str, float]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, family, key, help_ in STORE:
            yield family(name, help_, value=self.stats.get(key, 0))


def render(snapshots: list[PoolSnapshot], stats: StreamStats, store: dict[str, float] | None = None) -> str:
    """The text exposition of these snapshots and of the state file's work (`store`: Store.stats, when
    the server has a durable store); one registry per scrape: nothing is kept between them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Pools(snapshots, stats))
    if store is not None:
        registry.register(_Store(store))
    return generate_latest(registry).decode()
