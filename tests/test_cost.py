"""What a pool's sandboxes cost (core/cost.py): the sandbox-seconds the engine counts add up to the members'
lifetimes, part by part, as their own events tell them (claims, releases, a lease run out, terminations, a
create failing, deaths, a resize, TTLs, a reuse pool's resets); the price per sandbox-hour from the pool
file (or Modal's cpu and memory at the file's rates) and what `check --json` and /metrics make of them."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from typing import Any

import httpx
import pytest
from server_fixtures import pool_table, served, until

from poolui import virtual_time
from poolui.clock import FrozenClock, LoopClock
from poolui.core.cost import PART, PARTS, Tally, report
from poolui.core.manager import PoolManager
from poolui.core.model import Event, MemberState
from poolui.errors import ClaimTimeout, ConfigError
from poolui.pool_file import parse_config
from poolui.providers.base import Sandbox
from poolui.providers.instant import InstantProvider

S = MemberState
BASE: dict[str, Any] = {"provider": "instant", "min_ready": 1, "max_ready": 6, "max_total": 20, "ttl": "10m",
                        "min_remaining_ttl": "1m", "claim_timeout": "30s", "health": {"enabled": False},
                        "instant": {"create_delay": "2s", "ready_delay": "500ms"}}


def test_the_tally_counts_members_and_their_seconds_per_state() -> None:
    clock = FrozenClock()
    t = Tally(clock)
    t.move(None, S.CREATING)
    t.move(None, S.CREATING)
    clock.advance(2)
    t.move(S.CREATING, S.READY)
    clock.advance(3)
    t.move(S.READY, S.CLAIMED)
    t.move(S.CREATING, S.FAILED)
    clock.advance(1.5)
    t.move(S.FAILED, None)
    assert (t[S.CREATING], t[S.READY], t[S.CLAIMED], t[S.FAILED]) == (0, 0, 1, 0)
    clock.advance(4)  # still claimed: parts() counts up to now
    assert t.parts() == {"warming": 2 + 2 + 3, "idle": 3, "claimed": 1.5 + 4, "ending": 1.5}


def test_the_report_prices_the_parts() -> None:
    clock = FrozenClock()
    t = Tally(clock)
    for _ in range(3):
        t.move(None, S.READY)
    clock.advance(3600)
    t.move(S.READY, S.CLAIMED)
    clock.advance(1800)  # 2 idle and 1 claimed for half an hour: 4 idle and 0.5 claimed sandbox-hours
    r = report(t, 0.5, claims=2)
    assert r["sandbox_seconds"] == {"warming": 0, "idle": 4 * 3600, "claimed": 1800, "ending": 0}
    assert (r["cost"], r["idle_cost"], r["idle_cost_per_hour"], r["cost_per_claim"]) == (2.25, 2.0, 1.0, 1.125)
    assert r["waste_ratio"] == 4 / 4.5
    unpriced = report(t, None, claims=0)
    assert unpriced["cost"] is unpriced["idle_cost_per_hour"] is unpriced["cost_per_claim"] is None
    assert unpriced["waste_ratio"] == 4 / 4.5 and report(Tally(clock), None, 0)["waste_ratio"] is None


def from_events(events: list[Event], now: float) -> tuple[dict[str, float], float]:
    """Seconds per part and the sum of the members' lifetimes (to their end, or to `now`), from the event
    log alone: each event gives the state its member is in from then on."""
    parts: dict[str, float] = defaultdict(float)
    at: dict[str, tuple[str, float]] = {}
    born: dict[str, float] = {}
    lives = 0.0
    for e in events:
        if e.member_id is None or e.state is None:
            continue
        if e.member_id in at:
            state, since = at[e.member_id]
            parts[PART[S(state)]] += e.ts - since
        else:
            born[e.member_id] = e.ts
        if e.state == "gone":
            lives += e.ts - born.pop(e.member_id)
            at.pop(e.member_id, None)
        else:
            at[e.member_id] = (e.state, e.ts)
    for member_id, (state, since) in at.items():
        parts[PART[S(state)]] += now - since
        lives += now - born[member_id]
    return {p: parts[p] for p in PARTS}, lives


async def reset(self: InstantProvider, sb: Sandbox, argv: tuple[str, ...]) -> None:
    """A reset that takes a second on the engine's clock: the instant provider standing in for one that can."""
    await self.ctx.clock.sleep(1.0)


async def single_use(mgr: PoolManager, clock: LoopClock) -> None:
    """Claims held for various times and released, one terminated while claimed, one whose lease runs out,
    ready and claimed sandboxes that die, creates that fail for a while, a resize up and down."""
    provider = mgr.pool("p").provider
    assert isinstance(provider, InstantProvider)
    for i in range(6):
        c = await mgr.claim("p")
        await clock.sleep(1.5 * i)
        await mgr.release("p", c.id)
    held = await mgr.claim("p")
    await clock.sleep(3)
    await mgr.terminate("p", [held.id])
    await mgr.claim("p", lease=5)  # never renewed
    dies = await mgr.claim("p")
    await clock.sleep(4)
    provider.kill_from_outside(dies.id)
    provider.kill_from_outside(mgr.pool("p").handout.members()[0].id)
    provider.fail = True
    await clock.sleep(10)
    provider.fail = False
    await mgr.resize("p", target=5)
    await clock.sleep(30)
    await mgr.resize("p", target=2)
    await clock.sleep(20)


async def reused(mgr: PoolManager, clock: LoopClock) -> None:
    """A reuse pool: each release resets the sandbox, which is ready again; max_uses ends some."""
    for i in range(8):
        c = await mgr.claim("r")
        await clock.sleep(2 + i)
        await mgr.release("r", c.id)
        await clock.sleep(0.5)


def test_cost_adds_up_to_the_members_lifetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """On virtual time, over 25 minutes (TTLs of 10 minutes run out too): the engine's sandbox-seconds per
    part equal what the event log says member by member, and together the sum of the lifetimes, while
    sandboxes run and after the manager has stopped them all."""
    monkeypatch.setattr(InstantProvider, "reset", reset, raising=False)
    cfg = parse_config({"pools": {"p": {**BASE, "target_ready": 3, "price_per_hour": 0.36},
                                  "r": {**BASE, "target_ready": 2, "reuse": True, "max_uses": 3}}}, "test")

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop(), wall=0.0)  # event times as small as the seconds summed
        mgr = PoolManager(cfg, clock=clock, store="memory")
        async with mgr:
            await mgr.warm_up(30)
            await asyncio.gather(single_use(mgr, clock), reused(mgr, clock))
            await clock.sleep(25 * 60)
            for name in ("p", "r"):
                check(mgr, name, clock.time(), stopped=False)
        for name in ("p", "r"):
            check(mgr, name, clock.time(), stopped=True)

    def check(mgr: PoolManager, name: str, now: float, stopped: bool) -> None:
        assert mgr.store is not None
        pool = mgr.pool(name)
        parts, lives = from_events(mgr.store.events(name, 100_000), now)
        counted = pool.tally.parts()
        assert counted == pytest.approx(parts, abs=1e-6), name
        assert sum(counted.values()) == pytest.approx(lives, abs=1e-6), name
        assert all(counted[p] > 0 for p in ("warming", "idle", "claimed")), counted
        assert (not pool.members) is stopped
        m = pool.metrics
        assert m.resets if name == "r" else (m.create_failures and m.leases_expired), m.to_dict()
        c = pool.snapshot(members=False).metrics["cost"]
        assert c["sandbox_seconds"] == counted
        claims = m.claims
        handed = sum(n for (outcome, _), n in claims.items() if outcome in ("warm", "cold"))
        if name == "p":
            assert c["cost"] == pytest.approx(sum(counted.values()) * 0.0001)
            assert c["cost_per_claim"] == pytest.approx(c["cost"] / handed) and handed == c["claims"] == 9
            assert c["idle_cost_per_hour"] == pytest.approx(0.36 * pool.counts()["ready"])
        else:
            assert c["price_per_hour"] is c["cost"] is c["cost_per_claim"] is None and handed == 8
        assert c["waste_ratio"] == pytest.approx(counted["idle"] / sum(counted.values()))

    virtual_time.run(main())


@pytest.mark.parametrize(("pool", "message"), [
    ({"price_per_hour": -0.1}, "pool 'p': key 'price_per_hour' = -0.1 is not allowed: expected a number from 0 "
                               "to 1,000,000 (what one sandbox-hour costs, in your currency)"),
    ({"price_per_hour": "0.10"}, "key 'price_per_hour' = '0.10' is not allowed: expected a number from 0"),
    ({"price_per_hour": True}, "key 'price_per_hour' = True is not allowed"),
    ({"price_per_hour": float("inf")}, "key 'price_per_hour' = inf is not allowed"),
    ({"instant": {"cpu_rate": 0.05}}, "pool 'p'.instant: key 'cpu_rate' prices a sandbox by the cpu and memory it "
                                      "asks for, which the instant provider does not say: write price_per_hour"),
    ({"provider": "modal", "command": ["x"], "modal": {"memory": "2GiB", "cpu_rate": 0.05}},
     "pool 'p'.modal: key 'cpu_rate' prices the cpu a sandbox asks for: write cpu = ... beside it"),
    ({"provider": "modal", "command": ["x"], "modal": {"cpu": 1, "memory_rate": -1}},
     "pool 'p'.modal: key 'memory_rate' = -1 is not allowed: expected a number from 0 to 1,000,000 (what one "
     "GiB-hour costs"),
    ({"provider": "modal", "command": ["x"], "price_per_hour": 1, "modal": {"cpu": 1, "cpu_rate": 0.05}},
     "pool 'p': price_per_hour and modal.cpu_rate both price a sandbox: give one or the other"),
])
def test_a_bad_price_is_refused_with_what_is_allowed(pool: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"pools": {"p": {"provider": "instant", **pool}}}, "pools.toml")
    assert message in str(e.value)


def test_prices_from_the_pool_file() -> None:
    """price_per_hour as written; Modal's from its cpu and memory at the file's rates, which stay out of the
    provider's table and the revision (a new price replaces no sandbox)."""
    def pool(table: dict[str, Any]) -> Any:
        return parse_config({"pools": {"p": table}}, "pools.toml").pools["p"]

    assert pool({"provider": "instant", "price_per_hour": 0}).price_per_hour == 0.0
    assert pool({"provider": "instant"}).price_per_hour is None
    sizes = {"cpu": 2, "memory": "4GiB"}
    modal: dict[str, Any] = {"provider": "modal", "command": ["x"], "modal": sizes}
    plain = pool(modal)
    rated = pool({**modal, "modal": {**sizes, "cpu_rate": 0.05, "memory_rate": 0.01}})
    assert rated.price_per_hour == pytest.approx(2 * 0.05 + 4 * 0.01) and plain.price_per_hour is None
    assert rated.revision == plain.revision and rated.raw_options == plain.raw_options
    assert pool({**modal, "modal": {"cpu": 0.5, "cpu_rate": 0.2}}).price_per_hour == pytest.approx(0.1)


def test_check_json_and_metrics_carry_the_cost_and_the_setpoint() -> None:
    """A real `poolui serve`: `check --json` gives each pool's setpoint, sizing and cost (the snapshot's), and
    /metrics the same as series; an unpriced pool has sandbox-seconds and no cost series."""
    pools = {"web": pool_table("instant", target_ready=2, price_per_hour=0.5),
             "free": pool_table("instant", target_ready=1, min_ready=0)}
    with served(pools, on_shutdown="terminate") as s:
        until(lambda: s.headless("check").returncode == 0, 20, "the pools to be warm")
        token = {"authorization": f"Bearer {s.token}"}
        claim = httpx.post(f"{s.url}/pools/web/claim", json={}, headers=token)
        assert claim.status_code == 200, claim.text
        r = s.headless("check", "--json")
        web, free = json.loads(r.stdout)["pools"]
        assert (web["setpoint"], web["sizing"], free["setpoint"]) == (2, "static", 1)
        assert web["cost"] == web["snapshot"]["metrics"]["cost"]
        cost = web["cost"]
        assert cost["price_per_hour"] == 0.5 and cost["claims"] == 1 and cost["sandbox_seconds"]["idle"] > 0
        assert cost["cost"] == pytest.approx(sum(cost["sandbox_seconds"].values()) * 0.5 / 3600)
        assert free["cost"]["price_per_hour"] is None and free["cost"]["sandbox_seconds"]["idle"] > 0
        words, perf = s.headless("check", "--pool", "web").stdout.split(" | ")
        assert re.search(r" waste=\d+% idle_cost/h=\d+\.\d\d(;|$)", words), words  # ; problems, if any
        assert re.search(r" waste=0\.\d{4};;;0;1 idle_cost_per_hour=\d+\.\d{4};;;0;$", perf.strip()), perf
        text = httpx.get(f"{s.url}/metrics", headers=token).text
        assert 'poolui_setpoint{pool="web"} 2.0' in text and 'poolui_setpoint{pool="free"} 1.0' in text
        assert 'poolui_sizing{pool="web",source="static"} 1.0' in text
        assert 'poolui_sizing{pool="web",source="autoscale"} 0.0' in text
        for part in ("warming", "idle", "claimed", "ending"):
            for name in ("web", "free"):
                assert f'poolui_sandbox_seconds_total{{pool="{name}",state="{part}"}} ' in text
        assert 'poolui_price_per_hour{pool="web"} 0.5' in text and 'poolui_cost_total{pool="web"} ' in text
        assert 'poolui_idle_cost_per_hour{pool="web"} ' in text and 'poolui_cost_per_claim{pool="web"} ' in text
        assert 'poolui_waste_ratio{pool="free"} ' in text
        assert 'pool="free"' not in "".join(ln for ln in text.splitlines() if ln.startswith(("poolui_cost",
                                                                                             "poolui_price")))


def test_an_autoscaled_pool_is_checked_against_its_setpoint() -> None:
    """check's warning and ready=N/M go by the setpoint the pool aims at, and say who set it."""
    from poolui.core.model import PoolSnapshot
    from poolui.headless.check import assess, check_line

    counts = {"creating": 1, "starting": 0, "ready": 2, "claimed": 0, "failed": 0, "terminating": 0}
    s = PoolSnapshot(name="web", provider="instant", isolation="none", state="warming", reason="", target_ready=3,
                     min_ready=1, max_ready=40, max_total=80, counts=counts, waiting=0, members=[], metrics={},
                     config={}, taken_at=0.0, setpoint=12, sizing="autoscale")
    status, why = assess(s)
    assert why == ["ready 2 below setpoint 12 (autoscale)"] and status.name == "WARNING"
    assert "ready=2/12 (autoscale) creating=1" in check_line(s, status, why)
    assert " | ready=2;12:;1:;0;40 " in check_line(s, status, why)
    night = PoolSnapshot(**{**s.__dict__, "setpoint": 1, "counts": {**counts, "ready": 1}})
    assert assess(night)[1] == []  # target_ready 3 is not what an autoscaled pool aims at


def test_claim_timeouts_are_not_claims_handed_out() -> None:
    """cost_per_claim divides by the claims that got a sandbox: a claim that timed out cost nothing extra."""
    cfg = parse_config({"pools": {"p": {**BASE, "target_ready": 0, "min_ready": 0, "max_ready": 0,
                                        "price_per_hour": 1.0}}}, "test")

    async def main() -> None:
        async with PoolManager(cfg, clock=LoopClock(asyncio.get_running_loop()), store="memory") as mgr:
            with pytest.raises(ClaimTimeout):
                await mgr.claim("p", timeout=1)
            c = (await mgr.snapshot("p", members=False)).metrics["cost"]
            assert c["claims"] == 0 and c["cost_per_claim"] is None and c["cost"] == 0

    virtual_time.run(main())
