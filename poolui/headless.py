"""`poolui --headless VERB`: the control verbs for scripts and on-call, text or --json.

Never imports textual (tests/test_headless.py checks it), and only what a verb needs: `check` must stay
well under 200 ms. Data goes to stdout, diagnostics to stderr.

Exit codes: `check` follows the Nagios plugin API (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Every other
verb: 0 done, 1 refused by the pool (unknown pool or sandbox, exhausted, bad value), 2 usage,
3 no server or token refused, 4 timed out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from .errors import (
    ClaimTimeout,
    ConfigError,
    PoolError,
    PoolNotFound,
    ServerUnreachable,
    Unauthorized,
    WarmUpTimeout,
)

if TYPE_CHECKING:
    from .client import PoolClient
    from .core.model import PoolSnapshot


class Exit(IntEnum):
    OK = 0
    REFUSED = 1
    USAGE = 2
    UNREACHABLE = 3
    TIMEOUT = 4
    INTERRUPTED = 130


class Nagios(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class UsageError(Exception):
    pass


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(f"poolui: {text}\n")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


# ---------------------------------------------------------------------- check


def assess(s: PoolSnapshot) -> tuple[Nagios, list[str]]:
    """The Nagios status of one pool and why."""
    problems: list[tuple[Nagios, str]] = []
    ready = s.counts.get("ready", 0)
    if s.state in ("draining", "drained"):
        problems.append((Nagios.CRITICAL, f"pool is {s.state}"))
    elif ready < s.min_ready:
        problems.append((Nagios.CRITICAL, f"ready {ready} below min_ready {s.min_ready}"))
    elif ready < s.target_ready:
        problems.append((Nagios.WARNING, f"ready {ready} below target {s.target_ready}"))
    if s.state == "degraded":
        problems.append((Nagios.WARNING, f"degraded: {s.reason}" if s.reason else "degraded"))
    status = max((p[0] for p in problems), default=Nagios.OK)
    return status, [p[1] for p in problems]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f}ms"


def check_line(s: PoolSnapshot, status: Nagios, problems: list[str]) -> str:
    c = s.counts
    ready, creating, claimed = c.get("ready", 0), c.get("creating", 0) + c.get("starting", 0), c.get("claimed", 0)
    hit = s.metrics.get("hit_rate")
    p99 = (s.metrics.get("claim_latency") or {}).get("p99")
    text = (f"POOLUI {status.name} - {s.name}: {s.state} ready={ready}/{s.target_ready} creating={creating} "
            f"claimed={claimed} waiting={s.waiting} hit_rate={'n/a' if hit is None else f'{hit:.0%}'} "
            f"p99={_ms(p99)}")
    if problems:
        text += "; " + "; ".join(problems)
    perf = (f"ready={ready};{s.target_ready}:;{s.min_ready}:;0;{s.max_ready} creating={creating};;;0; "
            f"claimed={claimed};;;0;{s.max_total} waiting={s.waiting};;;0;")
    if p99 is not None:
        perf += f" p99_claim={p99:.6f}s;;;0;"
    return f"{text} | {perf}"


def cmd_check(args: argparse.Namespace) -> int:
    """Synchronous on purpose: no asyncio or httpx to import, so it stays far inside its 200 ms."""
    from .client_sync import fetch_pools
    from .connect import find_endpoint

    try:
        endpoint = find_endpoint(args.server, args.config, args.token_file, args.state_dir)
        snaps = fetch_pools(endpoint.url, endpoint.token, args.pool, members=args.json, timeout=args.timeout)
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
            {"name": s.name, "status": st.name, "problems": probs, "snapshot": s.to_dict()} for s, st, probs in rows
        ]})
    elif not rows:
        out("POOLUI UNKNOWN - the server has no pools")
    else:
        for s, st, probs in sorted(rows, key=lambda r: -r[1]):  # worst first: Nagios reads the first line
            out(check_line(s, st, probs))
    return worst


# ---------------------------------------------------------------------- the other verbs


def _client(args: argparse.Namespace) -> PoolClient:
    from .connect import connect

    return connect(args.server, args.config, args.token_file, args.state_dir, timeout=args.timeout)


async def _pool_name(client: PoolClient, args: argparse.Namespace) -> str:
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


async def cmd_list(client: PoolClient, args: argparse.Namespace) -> int:
    snaps = [await client.get(args.pool)] if args.pool else await client.list_pools(members=True)
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


async def cmd_claim(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    c = await client.claim(pool, timeout=args.wait, check_health=args.check_health, claim_key=args.key)
    if args.json:
        emit_json(c.to_dict())
    else:
        out(f"{c.id} {c.url}")
        err(f"claimed from pool '{pool}' ({'warm' if c.warm else 'cold: ' + c.reason}, "
            f"{c.latency * 1000:.1f} ms); release it with: poolui --headless release --pool {pool} {c.id}")
    return Exit.OK


async def cmd_release(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    released = await client.release(pool, args.id)
    if args.json:
        emit_json({"id": args.id, "released": released})
    elif released:
        out(f"released {args.id}")
    else:
        err(f"{args.id} was released already")
    return Exit.OK


async def cmd_terminate(client: PoolClient, args: argparse.Namespace) -> int:
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


async def cmd_resize(client: PoolClient, args: argparse.Namespace) -> int:
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


async def cmd_drain(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    s = await client.drain(pool, wait=args.wait, timeout=args.drain_timeout)
    emit_json(s.to_dict()) if args.json else out(_sizes(s))
    return Exit.OK


async def cmd_pause(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    s = await client.pause(pool)
    emit_json(s.to_dict()) if args.json else out(_sizes(s))
    return Exit.OK


async def cmd_resume(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    s = await client.resume(pool)
    emit_json(s.to_dict()) if args.json else out(_sizes(s))
    return Exit.OK


async def cmd_maintain(client: PoolClient, args: argparse.Namespace) -> int:
    pool = await _pool_name(client, args)
    r = await client.maintain(pool)
    if args.json:
        emit_json(r.to_dict())
    else:
        strays = f", {len(r.removed_strays)} strays" if r.removed_strays else ""
        out(f"{r.pool}: probed {r.probed}, removed {len(r.removed_unhealthy)} unhealthy, "
            f"{len(r.removed_expiring)} expiring, {len(r.removed_stale)} stale{strays}; created {r.created}")
    return Exit.OK


async def cmd_events(client: PoolClient, args: argparse.Namespace) -> int:
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


# ---------------------------------------------------------------------- demo (embedded)


async def cmd_demo(args: argparse.Namespace) -> int:
    """Warm the pool in this process, claim, ask the sandbox's server, release, stop: nothing left behind."""
    import shutil
    import tempfile
    import time

    import httpx

    from .connect import load
    from .core.manager import PoolManager

    cfg = load(args.config)
    name = args.pool or next(iter(cfg.pools))
    if name not in cfg.pools:
        raise PoolNotFound(f"no pool named '{name}' in {cfg.path}; pools: {', '.join(cfg.pools)}")
    state_dir = tempfile.mkdtemp(prefix="poolui-demo-")  # never the state of a running server
    result: dict[str, Any] = {"pool": name, "provider": cfg.pools[name].provider}
    try:
        manager = PoolManager(cfg, state_dir=state_dir)
        await manager.start()
        try:
            err(f"warming pool '{name}' ({cfg.pools[name].provider}, {cfg.pools[name].target_ready} sandboxes)...")
            t0 = time.monotonic()
            await manager.warm_up(timeout=args.wait, pools=[name])
            result["warm_up_s"] = round(time.monotonic() - t0, 3)
            claim = await manager.claim(name, timeout=args.wait)
            result["claim"] = claim.to_dict()
            try:
                result["answer"] = await _ask(httpx, claim.url)
            finally:
                await manager.release(name, claim.id)
            result["released"] = True
        finally:
            await manager.stop(keep=False)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    if args.json:
        emit_json(result)
        return Exit.OK
    c = result["claim"]
    a = result["answer"]
    out(f"pool '{name}' warm in {result['warm_up_s']:.2f}s; claimed sandbox {c['id']} "
        f"({'warm' if c['warm'] else 'cold'}, {c['latency_ms']:.1f} ms)")
    out(f"url: {c['url']}")
    out(f"answer: {a['status_line']}")
    if a.get("body"):
        out("  " + a["body"].replace("\n", "\n  ").rstrip())
    out(f"released {c['id']}; pool stopped, nothing left running")
    return Exit.OK


async def _ask(httpx: Any, url: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        return {"status_line": f"(not an http URL: {url})", "body": ""}
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
        try:
            r = await http.get(url)
        except httpx.HTTPError as e:
            return {"status_line": f"(no answer: {e or type(e).__name__})", "body": ""}
    return {"status_line": f"{r.http_version} {r.status_code} {r.reason_phrase}", "status": r.status_code,
            "body": r.content[:160].decode("utf-8", "replace")}


# ---------------------------------------------------------------------- parsing and running

REMOTE: dict[str, Callable[[PoolClient, argparse.Namespace], Awaitable[int]]] = {
    "list": cmd_list, "claim": cmd_claim, "release": cmd_release, "terminate": cmd_terminate,
    "resize": cmd_resize, "drain": cmd_drain, "pause": cmd_pause, "resume": cmd_resume,
    "maintain": cmd_maintain, "events": cmd_events,
}


def add_common(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """The options every verb takes; `suppress` keeps a verb's copy from overwriting one given before it."""

    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--json", action="store_true", default=d(False), help="print JSON on stdout")
    p.add_argument("--server", metavar="URL", default=d(None),
                   help="server URL (default: $POOLUI_SERVER, else the pool file's [server] table)")
    p.add_argument("--pool", metavar="NAME", default=d(None), help="the pool (needed when there are several)")
    p.add_argument("--config", metavar="FILE", default=d(None),
                   help="pool file (default: $POOLUI_CONFIG, else the bundled config/local.toml)")
    p.add_argument("--token-file", metavar="FILE", default=d(None),
                   help="token file (default: $POOLUI_TOKEN, else [server].token_file, else STATE_DIR/token)")
    p.add_argument("--state-dir", metavar="DIR", default=d(None), help="where the server keeps its state")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=d(10.0),
                   help="HTTP timeout of each request (default 10)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poolui --headless",
        description="poolui without the console (no TUI at all): control verbs for scripts and monitoring.",
        epilog="check exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; other verbs 0 done, 1 refused, 2 usage, "
               "3 no server or bad token, 4 timed out.",
    )
    add_common(p)
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help_: str) -> argparse.ArgumentParser:
        v = sub.add_parser(name, help=help_, description=help_)
        add_common(v, suppress=True)
        return v

    verb("check", "one status line per pool with Nagios exit codes")
    verb("list", "pools and their sandboxes")
    c = verb("claim", "claim a sandbox: prints 'ID URL'")
    c.add_argument("--wait", metavar="SECONDS", type=float, default=None,
                   help="how long to wait for one (default: the pool's claim_timeout)")
    c.add_argument("--check-health", action="store_true", help="probe it before it is handed out")
    c.add_argument("--key", metavar="CLAIM_KEY", default=None,
                   help="idempotency key: claiming again with it returns the same sandbox")
    r = verb("release", "end a claim (the sandbox is terminated and replaced)")
    r.add_argument("id", metavar="ID")
    t = verb("terminate", "terminate sandboxes, claimed or not")
    t.add_argument("ids", metavar="ID", nargs="+")
    z = verb("resize", "change how many sandboxes stay warm")
    z.add_argument("target", metavar="N", type=int, nargs="?", default=None, help="target ready")
    z.add_argument("--min", type=int, default=None, help="min_ready")
    z.add_argument("--max", type=int, default=None, help="max_ready")
    z.add_argument("--persist", action="store_true", help="also write the sizes into the pool file")
    dr = verb("drain", "no new claims; retire ready sandboxes; claimed ones finish")
    dr.add_argument("--wait", action="store_true", help="return once the pool is empty")
    dr.add_argument("--drain-timeout", metavar="SECONDS", type=float, default=None,
                    help="with --wait: give up after this long (exit 4)")
    verb("pause", "keep serving claims, stop refilling")
    verb("resume", "undo pause or drain")
    verb("maintain", "probe ready sandboxes now, remove bad and expiring ones, refill")
    e = verb("events", "print state changes as they happen")
    e.add_argument("--count", type=int, default=0, help="stop after this many (default: follow)")
    demo = verb("demo", "run the pool in this process: warm it, claim, ask the sandbox, release, stop")
    demo.add_argument("--wait", metavar="SECONDS", type=float, default=60.0,
                      help="how long warming and claiming may take (default 60)")
    return p


def _exit_for(e: PoolError) -> int:
    if isinstance(e, ServerUnreachable | Unauthorized):
        return Exit.UNREACHABLE
    if isinstance(e, ClaimTimeout | WarmUpTimeout):
        return Exit.TIMEOUT
    return Exit.REFUSED


async def run_async(args: argparse.Namespace) -> int:
    if args.verb == "demo":
        return await cmd_demo(args)
    async with _client(args) as client:
        return await REMOTE[args.verb](client, args)


def _import_httpx_lean() -> None:
    """httpx imports its own command line (click, rich, pygments: ~35 ms) when click is installed, and
    httpcore its HTTP/2 support (~9 ms) when h2 is; a headless verb uses neither, and `check` has a 200 ms
    budget. Both treat the package as absent when importing it fails."""
    import sys

    if "httpx" in sys.modules:
        return
    hidden = [m for m in ("click", "h2") if m not in sys.modules]  # h2: HTTP/2, which poolui never asks for
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        for m in hidden:
            del sys.modules[m]


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb == "check":
        try:
            return cmd_check(args)
        except PoolError as e:
            out(f"POOLUI UNKNOWN - {e.code}: {e}")
            return Nagios.UNKNOWN
        except KeyboardInterrupt:
            return Nagios.UNKNOWN
        except BrokenPipeError:
            return Nagios.UNKNOWN
    _import_httpx_lean()
    try:
        return asyncio.run(run_async(args))
    except KeyboardInterrupt:
        err("interrupted")
        return Exit.INTERRUPTED
    except UsageError as e:
        err(str(e))
        return Exit.USAGE
    except (ServerUnreachable, Unauthorized) as e:
        hint = "" if isinstance(e, Unauthorized) else "; is `poolui serve` running?"
        err(f"{e}{hint}")
        return Exit.UNREACHABLE
    except ConfigError as e:
        err(str(e))
        return Exit.USAGE
    except PoolError as e:
        err(f"{e.code}: {e}")
        return _exit_for(e)
    except BrokenPipeError:
        return Exit.OK
