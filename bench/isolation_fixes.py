"""What the isolation fixes of issue 25 cost a local (bubblewrap) sandbox: the code before them against
the code after, taking turns in one run.

    .venv/bin/python bench/isolation_fixes.py [--rounds 20] [--cycles 4] [--execs 50] [--before b2c0b0b] [--after HEAD]

Each of the two commits is checked out in a temporary git worktree (removed at the end) and measured in a
subprocess of this same interpreter with PYTHONPATH=<worktree>; each subprocess says which poolui it
imported, and the run stops if it is not its tree's. The trees take turns round by round (each goes first
in every other round), so noise on this shared host falls on both alike. Each round starts one
PoolManager per tree with an `isolated` single-use pool (target 0, on_empty = "create") and an `isolated`
reuse pool of one, warms both once unmeasured, then does `--cycles` times:
- cold start: a claim on the empty single-use pool, create to ready; then that new sandbox's first exec
  of `true` and `--execs` more, measured apart (then it is released, and the cycle goes on once it is
  gone);
- warm claim: an in-process PoolManager.claim of the reuse pool's ready member;
- exec round trip: `--execs` in-process execs of `true` in that claimed sandbox (PoolManager.exec);
- reset: its release to claimed again (the pool holds one sandbox, so the claim waits for the reset and
  the readiness probe after it); it is released once more and the cycle ends when it is ready again, so
  no reset runs beside the next cold start;
- for the after tree, where this machine can give it (root, pasta): the same for an `egress` pool, shown
  against the after tree's `isolated` one.
Prints each measure's p50/p99 before and after, after - before and after / before (of p50 and of p99), then
all samples' percentiles as one JSON line to compare runs by.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MEASURES = (("cold", "cold start, create to ready"), ("claim", "warm claim, in-process"),
            ("exec", "exec `true`, reused sandbox"), ("first_exec", "first exec `true`, new sandbox"),
            ("fresh_exec", "exec `true`, new sandbox"),
            ("reset", "reset, release to claimed again"))
EGRESS = (("egress_cold", "cold start, create to ready", "cold"),
          ("egress_first_exec", "first exec `true`, new sandbox", "first_exec"),
          ("egress_exec", "exec `true`, new sandbox", "fresh_exec"))


def table(network: str, reuse: bool) -> dict[str, object]:
    sizes: dict[str, object] = (
        {"target_ready": 1, "min_ready": 1, "max_ready": 1, "max_total": 1, "reuse": True, "max_uses": 100000}
        if reuse else {"target_ready": 0, "min_ready": 0, "max_ready": 1, "max_total": 1, "on_empty": "create"})
    return {"provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
            **sizes, "readiness": {"http": "/", "interval": "5ms"}, "health": {"enabled": False},
            "network": network}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000


# ---- the worker: one tree, one round, in a subprocess with PYTHONPATH=<tree> ----

async def worker(cycles: int, execs: int, egress: bool) -> dict[str, Any]:
    import poolui
    from poolui.core.manager import PoolManager
    from poolui.pool_file import parse_config
    from poolui.sandbox_io import collect

    pools = {"cold": table("isolated", False), "reuse": table("isolated", True)}
    if egress:
        pools["egress"] = table("egress", False)
    cfg = parse_config({"pools": pools}, "bench")
    out: dict[str, Any] = {"poolui": poolui.__file__, **{k: [] for k, _ in MEASURES},
                           **{k: [] for k, _, _ in EGRESS}}

    async def gone(mgr: PoolManager, pool: str) -> None:
        for _ in range(3000):
            if not sum((await mgr.snapshot(pool, members=False)).counts.values()):
                return
            await asyncio.sleep(0.01)
        raise SystemExit(f"{pool}: a released sandbox was still there after 30 s")

    async def run_true(mgr: PoolManager, pool: str, sid: str, n: int, into: list[float] | None) -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await collect(mgr.exec(pool, sid, ["true"]))
            if into is not None:
                into.append(time.perf_counter() - t0)
            assert r.exit_code == 0, r

    async def cold(mgr: PoolManager, pool: str, starts: list[float] | None, ex: list[float] | None) -> None:
        t0 = time.perf_counter()
        c = await mgr.claim(pool, timeout=60)
        if starts is not None:
            starts.append(time.perf_counter() - t0)
        if ex is not None:
            await run_true(mgr, pool, c.id, 1, out["first_exec" if pool == "cold" else "egress_first_exec"])
        await run_true(mgr, pool, c.id, execs if ex is not None else 1, ex)
        await mgr.release(pool, c.id)
        await gone(mgr, pool)

    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(cfg, state_dir=d) as mgr:
            await mgr.warm_up(timeout=60, pools=["reuse"])
            # once unmeasured: the first start of each kind and the first exec pay for cold caches
            for pool in pools:
                if pool != "reuse":
                    await cold(mgr, pool, None, None)
            c = await mgr.claim("reuse", timeout=60)
            await run_true(mgr, "reuse", c.id, 3, None)
            await mgr.release("reuse", c.id)
            await mgr.warm_up(timeout=60, pools=["reuse"])
            for _ in range(cycles):
                await cold(mgr, "cold", out["cold"], out["fresh_exec"])
                if egress:
                    await cold(mgr, "egress", out["egress_cold"], out["egress_exec"])
                t0 = time.perf_counter()
                c = await mgr.claim("reuse", timeout=5)
                out["claim"].append(time.perf_counter() - t0)
                await run_true(mgr, "reuse", c.id, execs, out["exec"])
                t0 = time.perf_counter()
                await mgr.release("reuse", c.id)
                c = await mgr.claim("reuse", timeout=60)
                out["reset"].append(time.perf_counter() - t0)
                await mgr.release("reuse", c.id)
                # this reset (a server restarted, on the after tree) must not overlap the next cold start
                await mgr.warm_up(timeout=60, pools=["reuse"])
            snap = await mgr.snapshot("reuse", members=False)
            out["resets"] = snap.metrics.get("resets")
    return out


# ---- the parent: worktrees, rounds, the table ----

def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def worktrees(refs: dict[str, str], prefix: str) -> Iterator[dict[str, Path]]:
    """Each commit checked out in a temporary git worktree, removed at the end (bench/exec_hop.py too)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    trees = {k: base / k for k in refs}
    try:
        for k, ref in refs.items():
            git("worktree", "add", "--detach", str(trees[k]), ref)
        yield trees
    finally:
        for t in trees.values():
            if t.exists():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(t)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def run_round(tree: Path, a: argparse.Namespace, egress: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--cycles", str(a.cycles),
            "--execs", str(a.execs)] + (["--egress"] if egress else [])
    p = subprocess.run(argv, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.PIPE, timeout=1800)
    if p.returncode:
        raise SystemExit(f"the round in {tree} failed (exit {p.returncode})")
    got: dict[str, Any] = json.loads(p.stdout.decode().strip().splitlines()[-1])
    if not Path(got["poolui"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the round for {tree} imported {got['poolui']}")
    return got


def row(name: str, was: list[float], now: list[float]) -> str:
    """p50 / p99 of each, then now - was and now / was, each of p50 / of p99."""
    cells = "".join(f"{pct(xs, 50):9.2f} /{pct(xs, 99):7.2f}" for xs in (was, now))
    diff = f"{pct(now, 50) - pct(was, 50):+9.2f} /{pct(now, 99) - pct(was, 99):+7.2f}"
    return f"{name:<38}{cells}{diff}{pct(now, 50) / pct(was, 50):9.2f} /{pct(now, 99) / pct(was, 99):5.2f}"


def main(a: argparse.Namespace) -> None:
    egress = os.geteuid() == 0 and shutil.which("pasta") is not None
    refs = {"before": git("rev-parse", "--short", a.before), "after": git("rev-parse", "--short", a.after)}
    samples: dict[str, dict[str, list[float]]] = {k: {} for k in refs}
    load0 = os.getloadavg()
    with worktrees(refs, "poolui-isolation-fixes-") as trees:
        for r in range(a.rounds):
            for k in (("before", "after") if r % 2 == 0 else ("after", "before")):
                got = run_round(trees[k], a, egress and k == "after")
                if r == 0:
                    print(f"{k}: {refs[k]}, imports {got['poolui']}", flush=True)
                for m, xs in got.items():
                    if isinstance(xs, list):
                        samples[k].setdefault(m, []).extend(xs)
    load1 = os.getloadavg()
    b, f = samples["before"], samples["after"]
    print(f"{a.rounds} rounds, the trees alternating; {os.cpu_count()} cores; 1-min load {load0[0]:.2f} at the "
          f"start, {load1[0]:.2f} at the end")
    print(f"{'':38}{'before':>18}{'after':>18}{'after - before':>18}{'after / before':>16}")
    for m, name in MEASURES:
        print(row(f"{name} (n={len(f[m])})", b[m], f[m]))
    if f.get("egress_cold"):
        print(f"{'egress, against isolated (both after)':<38}{'isolated':>18}{'egress':>18}{'egress - isol.':>18}"
              f"{'egress / isol.':>16}")
        for m, name, iso in EGRESS:
            print(row(f"{name} (n={len(f[m])})", f[iso], f[m]))
    print("(milliseconds, p50 / p99; the differences and ratios are of p50 / of p99)")
    print(json.dumps({"before": refs["before"], "after": refs["after"], "load": [load0[0], load1[0]],
                      **{f"{k}_{m}": [round(pct(xs, 50), 3), round(pct(xs, 99), 3), len(xs)]
                         for k in refs for m, xs in samples[k].items() if xs}}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20, help="rounds; each tree runs once in each")
    ap.add_argument("--cycles", type=int, default=4, help="cold starts, warm claims and resets per round and tree")
    ap.add_argument("--execs", type=int, default=50, help="execs of `true` per claimed sandbox")
    ap.add_argument("--before", default="b2c0b0b", help="the commit before the fixes")
    ap.add_argument("--after", default="HEAD", help="the commit after them")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--egress", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.cycles, args.execs, args.egress))))
    else:
        main(args)
