"""`poolui --headless demo`: the pool in this process, warmed, claimed, asked, released and stopped; and
`doctor`: what this machine can give local sandboxes."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from typing import Any

from ..connect import load, open_control
from ..control import Control
from ..errors import PoolNotFound, WarmUpTimeout
from .output import Exit, emit_json, err, out


async def _warm(c: Control, pool: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (snap := await c.snapshot(pool, members=False)).ready < snap.target_ready:
        if time.monotonic() > deadline:
            detail = f": {snap.reason}" if snap.reason else ""
            raise WarmUpTimeout(f"not warm after {timeout:g}s: pool '{pool}' has {snap.ready}/{snap.target_ready} "
                                f"ready ({snap.state}{detail})")
        await asyncio.sleep(0.02)


async def cmd_demo(args: argparse.Namespace) -> int:
    """Warm the pool in this process, claim, ask the sandbox's server, release, stop: nothing left behind."""
    import httpx

    cfg = load(args.config)
    name = args.pool or next(iter(cfg.pools))
    if name not in cfg.pools:
        raise PoolNotFound(f"no pool named '{name}' in {cfg.path}; pools: {', '.join(cfg.pools)}")
    state_dir = tempfile.mkdtemp(prefix="poolui-demo-")  # never the state of a running server
    result: dict[str, Any] = {"pool": name, "provider": cfg.pools[name].provider}
    try:
        async with open_control(config=args.config, state_dir=state_dir, embedded=True) as opened:
            c = opened.control
            err(f"warming pool '{name}' ({cfg.pools[name].provider}, {cfg.pools[name].target_ready} sandboxes)...")
            t0 = time.monotonic()
            await _warm(c, name, args.wait)
            result["warm_up_s"] = round(time.monotonic() - t0, 3)
            claim = await c.claim(name, timeout=args.wait)
            result["claim"] = claim.to_dict()
            try:
                result["answer"] = await _ask(httpx, claim.url)
            finally:
                await c.release(name, claim.id)
            result["released"] = True
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


async def cmd_doctor(args: argparse.Namespace) -> int:
    """What this machine can give local sandboxes: one line each (or --json); exit 1 when any is missing."""
    from ..providers.local.doctor import findings

    found = await findings()
    if args.json:
        emit_json([{"name": f.name, "ok": f.ok, "detail": f.detail} for f in found])
    else:
        for f in found:
            out(f"{'ok ' if f.ok else 'no '} {f.name}: {f.detail}")
    return 0 if all(f.ok for f in found) else 1
