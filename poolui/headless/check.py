"""`poolui --headless check`: one status line per pool, Nagios exit codes, well under 200 ms.

Synchronous on purpose: it reads snapshots with the standard library (client_sync), so neither asyncio nor
httpx is imported.
"""

from __future__ import annotations

import argparse

from ..core.model import PoolSnapshot
from ..errors import ConfigError, PoolNotFound, ServerUnreachable, Unauthorized
from .output import Nagios, emit_json, out


def assess(s: PoolSnapshot) -> tuple[Nagios, list[str]]:
    """The Nagios status of one pool and why."""
    problems: list[tuple[Nagios, str]] = []
    ready, target = s.counts.get("ready", 0), aim(s)
    if s.state in ("draining", "drained"):
        problems.append((Nagios.CRITICAL, f"pool is {s.state}"))
    elif ready < s.min_ready:
        problems.append((Nagios.CRITICAL, f"ready {ready} below min_ready {s.min_ready}"))
    elif ready < target:
        why = "target" if s.sizing == "static" else "setpoint"
        by = "" if s.sizing == "static" else f" ({s.sizing})"  # an autoscaled pool's aim moves: say who set it
        problems.append((Nagios.WARNING, f"ready {ready} below {why} {target}{by}"))
    if s.state == "degraded":
        problems.append((Nagios.WARNING, f"degraded: {s.reason}" if s.reason else "degraded"))
    status = max((p[0] for p in problems), default=Nagios.OK)
    return status, [p[1] for p in problems]


def aim(s: PoolSnapshot) -> int:
    """The ready sandboxes the pool aims at now: its setpoint (an autoscaled pool's moves), or from a server
    too old to say, target_ready."""
    return s.target_ready if s.setpoint is None else s.setpoint


def cost_text(s: PoolSnapshot) -> tuple[str, str]:
    """The cost's words and perfdata (core/cost.py): the idle share of all sandbox-seconds, and with a price
    what the ready sandboxes cost per hour now; nothing from a server too old to count them."""
    c = s.metrics.get("cost")
    if c is None or c["waste_ratio"] is None:
        return "", ""
    text, perf = f" waste={c['waste_ratio']:.0%}", f" waste={c['waste_ratio']:.4f};;;0;1"
    if c["price_per_hour"] is not None:
        text += f" idle_cost/h={c['idle_cost_per_hour']:.2f}"
        perf += f" idle_cost_per_hour={c['idle_cost_per_hour']:.4f};;;0;"
    return text, perf


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}ms"


def _rate(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.0%}"


CHECK_WINDOW = "5m"  # the text line's window: about one check interval, so each run says what happened since


def claims_text(s: PoolSnapshot) -> str:
    """Claims over the last 5 minutes (core/window.py), hits, cold claims, refusals and timeouts apart; a
    server too old to send windows gives the totals since its start, as before."""
    w = (s.metrics.get("windows") or {}).get(CHECK_WINDOW)
    if w is None:
        p99 = (s.metrics.get("claim_latency") or {}).get("p99")
        return f"hit_rate={_rate(s.metrics.get('hit_rate'))} p99={_ms(p99)}"
    return (f"{CHECK_WINDOW}: claims={w['claims']} hits={w['hits']} cold={w['cold']} refused={w['refusals']} "
            f"timeouts={w['timeouts']} hit_rate={_rate(w['hit_rate'])} p50={_ms(w['p50'])} p99={_ms(w['p99'])}")


def check_line(s: PoolSnapshot, status: Nagios, problems: list[str]) -> str:
    c = s.counts
    ready, creating, claimed = c.get("ready", 0), c.get("creating", 0) + c.get("starting", 0), c.get("claimed", 0)
    w = (s.metrics.get("windows") or {}).get(CHECK_WINDOW)
    p99 = w["p99"] if w is not None else (s.metrics.get("claim_latency") or {}).get("p99")
    target, (cost, cost_perf) = aim(s), cost_text(s)
    sizing = "" if s.sizing == "static" else f" ({s.sizing})"
    text = (f"POOLUI {status.name} - {s.name}: {s.state} ready={ready}/{target}{sizing} creating={creating} "
            f"claimed={claimed} waiting={s.waiting} {claims_text(s)}{cost}")
    if problems:
        text += "; " + "; ".join(problems)
    perf = (f"ready={ready};{target}:;{s.min_ready}:;0;{s.max_ready} creating={creating};;;0; "
            f"claimed={claimed};;;0;{s.max_total} waiting={s.waiting};;;0;")
    if w is not None:
        perf += "".join(f" {k}_{CHECK_WINDOW}={w[k]};;;0;" for k in ("claims", "hits", "cold", "refusals", "timeouts"))
    if p99 is not None:
        perf += f" p99_claim={p99:.6f}s;;;0;"
    return f"{text} | {perf}{cost_perf}"


def cmd_check(args: argparse.Namespace) -> int:
    """The check verb; the exit code is the worst pool's Nagios status."""
    from ..connect import fetch_pools, find_endpoint  # fetch_pools: checks the server runs the file's pools

    try:
        endpoint = find_endpoint(args.server, args.config, args.token_file, args.state_dir)
        snaps = fetch_pools(endpoint, args.pool, members=args.json, timeout=args.timeout)
    except (ConfigError, ServerUnreachable, Unauthorized, PoolNotFound) as e:
        if args.json:
            emit_json({"status": "UNKNOWN", "exit_code": int(Nagios.UNKNOWN), "detail": str(e), "pools": []})
        else:
            out(f"POOLUI UNKNOWN - {e}")
        return Nagios.UNKNOWN
    rows = [(s, *assess(s)) for s in snaps]
    worst = max((r[1] for r in rows), default=Nagios.UNKNOWN)
    if args.json:
        emit_json({"status": worst.name, "exit_code": int(worst), "pools": [
            {"name": s.name, "status": st.name, "problems": probs, "windows": s.metrics.get("windows") or {},
             "setpoint": s.setpoint, "sizing": s.sizing, "cost": s.metrics.get("cost"),
             "snapshot": s.to_dict()} for s, st, probs in rows
        ]})
    elif not rows:
        out("POOLUI UNKNOWN - the server has no pools")
    else:
        for s, st, probs in sorted(rows, key=lambda r: -r[1]):  # worst first: Nagios reads the first line
            out(check_line(s, st, probs))
    return worst
