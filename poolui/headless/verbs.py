"""The headless control verbs (everything but check and demo): one function each, over the contract."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable

from ..control import Control
from ..core.model import Event, PoolSnapshot
from ..errors import WarmUpTimeout
from ..sim.trace_events import TraceRecorder
from .output import Exit, UsageError, emit_json, err, out
from .use import cmd_cp, cmd_exec, cmd_run

Verb = Callable[[Control, argparse.Namespace], Awaitable[int]]


async def _pool_name(client: Control, args: argparse.Namespace) -> str:
    if args.pool:
        return str(args.pool)
    names = await client.names()
    if len(names) == 1:
        return names[0]
    raise UsageError(f"the server has pools {', '.join(names) or '(none)'}: name one with --pool")


def _sizes(s: PoolSnapshot) -> str:
    return (f"{s.name}: {s.state} target={s.target_ready} min={s.min_ready} max={s.max_ready} "
            f"ready={s.counts.get('ready', 0)} claimed={s.counts.get('claimed', 0)}")


def _ttl(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


async def cmd_list(client: Control, args: argparse.Namespace) -> int:
    snaps = [await client.snapshot(args.pool)] if args.pool else await client.list_pools(members=True)
    if args.json:
        emit_json({"pools": [s.to_dict() for s in snaps]})
        return Exit.OK
    for s in snaps:
        out(_sizes(s) + f" creating={s.counts.get('creating', 0) + s.counts.get('starting', 0)} "
                        f"waiting={s.waiting}")
        for m in s.members:
            key = f" key={m.claim_key}" if m.claim_key else ""
            out(f"  {m.id}  {m.state:<11} ttl={_ttl(m.ttl_left):<8} health={m.health:<7} {m.url}{key}")
    return Exit.OK


async def cmd_claim(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    c = await client.claim(pool, timeout=args.wait, check_health=args.check_health, claim_key=args.key,
                           lease=args.lease)
    if args.json:
        emit_json(c.to_dict())
    else:
        out(f"{c.id} {c.url}")
        err(f"claimed from pool '{pool}' ({'warm' if c.warm else 'cold: ' + c.reason}, "
            f"{c.latency * 1000:.1f} ms); release it with: poolui --headless release --pool {pool} {c.id}")
    return Exit.OK


async def cmd_release(client: Control, args: argparse.Namespace) -> int:
    if (args.id is None) == (args.key is None):
        err("release: give a sandbox ID or --key CLAIM_KEY (one of them)")
        return Exit.USAGE
    pool = await _pool_name(client, args)
    what = args.id or f"the claim of key {args.key}"
    released = await (client.release(pool, args.id) if args.id else client.release_claim(pool, args.key))
    if args.json:
        emit_json({"id": args.id or args.key, "released": released})
    elif released:
        out(f"released {what}")
    else:
        err(f"{what}: nothing to release (released already, or the key holds no claim)")
    return Exit.OK


async def cmd_renew(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    lease = await client.renew(pool, args.id, args.lease)
    if args.json:
        emit_json(lease.to_dict())
    else:
        out(f"renewed {lease.id}: lease ends at {lease.lease_expires_at:.0f} (sandbox TTL at {lease.expires_at:.0f})")
    return Exit.OK


async def cmd_terminate(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    done = await client.terminate(pool, args.ids)
    if args.json:
        emit_json({"terminated": done})
    else:
        for i in done:
            out(i)
        gone = [i for i in args.ids if i not in done]
        if gone:
            err(f"already gone or going: {', '.join(gone)}")
    return Exit.OK


async def cmd_resize(client: Control, args: argparse.Namespace) -> int:
    if args.target is None and args.min is None and args.max is None:
        raise UsageError("resize needs N (the target), --min or --max")
    pool = await _pool_name(client, args)
    s = await client.resize(pool, target=args.target, min_ready=args.min, max_ready=args.max, persist=args.persist)
    if args.json:
        emit_json(s.to_dict())
    else:
        out(_sizes(s))
        if args.persist:
            err("written to the pool file")
    return Exit.OK


def _still_there(s: PoolSnapshot) -> str:
    """What keeps a draining pool from being empty: the claimed sandboxes by name (key, TTL left), the rest
    counted by state."""
    claimed = [m for m in s.members if m.state == "claimed"]
    parts = [f"{m.id} ({f'key {m.claim_key}, ' if m.claim_key else ''}TTL {_ttl(m.ttl_left)} left)"
             for m in claimed]
    others: dict[str, int] = {}
    for m in s.members:
        if m.state != "claimed":
            others[m.state] = others.get(m.state, 0) + 1
    text = f"{len(claimed)} claimed" + (f": {', '.join(parts)}" if parts else "")
    return text + "".join(f"; {n} {state}" for state, n in sorted(others.items()))


async def cmd_drain(client: Control, args: argparse.Namespace) -> int:
    """drain [--wait]: with --wait, --timeout (or --drain-timeout) bounds the whole wait, and running out
    says what is still claimed (exit 4); the pool keeps draining either way."""
    bound = args.drain_timeout if args.drain_timeout is not None else args.timeout if args.timeout_given else None
    deadline = None if bound is None else time.monotonic() + bound
    pool = await _pool_name(client, args)
    s = await client.drain(pool)
    if args.wait:
        now = await client.snapshot(pool, members=True)
        if now.members:
            err(f"draining pool '{pool}': waiting {f'up to {bound:g}s ' if bound is not None else ''}"
                f"for {len(now.members)} sandbox{'es' if len(now.members) != 1 else ''} to go "
                f"({_still_there(now)})")
        try:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            s = await client.drain(pool, wait=True, timeout=left)
        except WarmUpTimeout:
            still = await client.snapshot(pool, members=True)
            err(f"drain of pool '{pool}' timed out after {bound or 0:g}s, not empty: {_still_there(still)}. "
                f"The pool keeps draining (no new claims); release or terminate what is claimed "
                f"(poolui --headless terminate --pool {pool} ID), or end the drain with resume")
            if args.json:
                emit_json({**still.to_dict(), "timed_out": True})
            return Exit.TIMEOUT
    emit_json(s.to_dict()) if args.json else out(_sizes(s))
    return Exit.OK


def _mode_verb(verb: str) -> Verb:
    async def run(client: Control, args: argparse.Namespace) -> int:
        pool = await _pool_name(client, args)
        s = await (client.pause(pool) if verb == "pause" else client.resume(pool))
        emit_json(s.to_dict()) if args.json else out(_sizes(s))
        return Exit.OK

    return run


async def cmd_maintain(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    r = await client.maintain(pool)
    if args.json:
        emit_json(r.to_dict())
    else:
        out(f"{r.pool}: {r.summary()}")
    return Exit.OK


async def cmd_events(client: Control, args: argparse.Namespace) -> int:
    if getattr(args, "format", "text") == "trace":
        return await cmd_events_trace(client, args)
    from datetime import datetime

    n = 0
    async for e in client.events(args.pool):
        if args.json:
            sys.stdout.write(json.dumps(e.to_dict()) + "\n")
        else:
            ts = datetime.fromtimestamp(e.ts).strftime("%H:%M:%S.%f")[:-3]
            out(f"{ts} {e.pool} {e.kind:<12} {e.member_id or '-'} {e.detail}")
        sys.stdout.flush()
        n += 1
        if args.count and n >= args.count:
            break
    return Exit.OK


async def cmd_events_trace(client: Control, args: argparse.Namespace) -> int:
    """events --format trace: the pool's claims as a trace for `simulate --trace` (CSV), from the events it
    still keeps, then as they happen; --count stops after that many claims (default: follow)."""
    from datetime import UTC, datetime

    pool = await _pool_name(client, args)
    feed = client.events(pool)  # subscribed before the history is read: nothing falls in between
    rec, n = TraceRecorder(pool), 0
    try:
        for e in await client.recent_events(pool, limit=1000):
            n += _trace_row(rec, e)
            if args.count and n >= args.count:
                return Exit.OK
        async for e in feed:
            n += _trace_row(rec, e)
            if args.count and n >= args.count:
                break
    finally:
        await feed.aclose()
        if rec.timeouts:
            plural = "s" if rec.timeouts != 1 else ""
            err(f"{rec.timeouts} claim{plural} timed out in this span (demand the pool missed)")
        if rec.start is not None and n == 0:
            err("no claim has ended yet")
        elif rec.start is None:
            err(f"pool '{pool}' logged no claim ({datetime.now(UTC):%H:%M:%S} UTC)")
    return Exit.OK


def _trace_row(rec: TraceRecorder, e: Event) -> int:
    """Write the claim e ends, if it ends one (the header before the first); 1 when written."""
    from datetime import UTC, datetime

    first = rec.start is None
    row = rec.feed(e)
    if first and rec.start is not None:
        out("# poolui claim trace: from the event log of pool " + str(rec.pool))
        out("# arrival: when the claim asked (a cold claim's wait is in the log); claims that timed out held nothing "
            "and are counted on stderr, not listed")
        out(f"# start = {datetime.fromtimestamp(rec.start, UTC).isoformat()}")
        out("arrival,hold")
    if row is None:
        return 0
    out(f"{row[0]:.6f},{row[1]:.6f}")
    sys.stdout.flush()
    return 1


VERBS: dict[str, Verb] = {
    "list": cmd_list, "claim": cmd_claim, "release": cmd_release, "renew": cmd_renew, "terminate": cmd_terminate,
    "resize": cmd_resize, "drain": cmd_drain, "pause": _mode_verb("pause"), "resume": _mode_verb("resume"),
    "maintain": cmd_maintain, "events": cmd_events, "exec": cmd_exec, "run": cmd_run, "cp": cmd_cp,
}
