"""The exec round trip of a claimed local (bubblewrap) sandbox, two commits taking turns in one run, with
the CPU each exec costs inside the sandbox: where the agent's hop to its spawner (issue 25) shows.

    .venv/bin/python bench/exec_hop.py [--rounds 4] [--batches 20] [--batch 20] [--before HEAD~1] [--after HEAD]
                                       [--stdin]

Each commit is checked out in a temporary git worktree (removed at the end) and measured by a worker
subprocess of this interpreter with PYTHONPATH=<worktree> (the run stops if one imported another poolui).
In each round both workers start a PoolManager with an `isolated` reuse pool of one, claim it and run 20
execs unmeasured (a root controller's spawner starts after the second); then they take turns batch by
batch (`--batch` execs of `true`, with `--stdin` of `cat` with 3 bytes in; each tree goes first in every
other pair), so that the noise of this shared host falls on both alike. Each exec is timed, and each batch
reads the CPU time of every process of the sandbox (/proc/PID/stat: its own and its reaped children's, so
the commands count) and of the controller (the worker) before and after it.

Prints per tree: the p50 and p99 of the round trip and the CPU an exec inside the sandbox and in the
controller; then after - before of the p50s, and the median and middle half of the differences of p50
between the two batches of each pair (run back to back: the figure least moved by the host's load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from isolation_fixes import git, worktrees

TICK = os.sysconf("SC_CLK_TCK")


def environs() -> dict[int, bytes]:
    """Each live process's environment (NUL-separated, with a NUL in front)."""
    found = {}
    for pid in (int(n) for n in os.listdir("/proc") if n.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                found[pid] = b"\0" + f.read()
        except OSError:
            pass
    return found


def sandbox_cpu(member: str) -> float:
    """Seconds of CPU of every live process whose environment names the member, with their reaped
    children's (the commands an agent or a spawner reaped)."""
    total = 0
    needle = f"\0POOLUI_SANDBOX={member}\0".encode()
    for pid in [p for p, env in environs().items() if needle in env]:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        total += sum(int(x) for x in data[data.rfind(b")") + 2:].split()[11:15])  # utime, stime, cutime, cstime
    return total / TICK


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def worker(stdin: bool) -> None:
    """One tree's side: a claimed sandbox; each line read is a batch size, answered by a JSON line with the
    batch's round trips and its CPU (the sandbox's, the controller's); an empty line ends it."""
    import poolui
    from poolui.core.manager import PoolManager
    from poolui.pool_file import parse_config
    from poolui.sandbox_io import collect

    pool = {"provider": "local", "command": ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
            "target_ready": 1, "min_ready": 1, "max_ready": 1, "max_total": 1, "reuse": True,
            "readiness": {"http": "/", "interval": "5ms"}, "health": {"enabled": False}, "network": "isolated"}
    argv, data = (["cat"], b"abc") if stdin else (["true"], b"")
    with tempfile.TemporaryDirectory() as d:
        async with PoolManager(parse_config({"pools": {"hop": pool}}, "bench"), state_dir=d) as mgr:
            await mgr.warm_up(timeout=60)
            c = await mgr.claim("hop", timeout=60)
            for _ in range(20):  # a root controller's spawner starts after the second
                r = await collect(mgr.exec("hop", c.id, argv, stdin=data))
                assert r.exit_code == 0 and r.stdout == data and not r.error, r
            member = member_of(c.id)
            print(json.dumps({"poolui": poolui.__file__}), flush=True)
            while n := int(sys.stdin.readline().strip() or 0):
                walls: list[float] = []
                cpu0, own0 = sandbox_cpu(member), time.process_time()
                for _ in range(n):
                    t0 = time.perf_counter()
                    r = await collect(mgr.exec("hop", c.id, argv, stdin=data))
                    walls.append(time.perf_counter() - t0)
                    assert r.exit_code == 0 and r.stdout == data and not r.error, r
                print(json.dumps({"walls": walls, "cpu": sandbox_cpu(member) - cpu0,
                                  "own": time.process_time() - own0}), flush=True)
            await mgr.release("hop", c.id)


def member_of(sid: str) -> str:
    """The POOLUI_SANDBOX value (namespace/pool/member) of the sandbox `sid`, from its processes."""
    for env in environs().values():
        for var in env.split(b"\0"):
            if var.startswith(b"POOLUI_SANDBOX=") and var.endswith(b"/" + sid.encode()):
                return var.split(b"=", 1)[1].decode()
    raise SystemExit(f"no process of {sid} found")


def run_round(trees: dict[str, Path], a: argparse.Namespace, first: str) -> dict[str, list[dict[str, Any]]]:
    """Both trees' workers (each importing its tree's poolui, checked) up at once, then batches of execs
    in turns, `first` first."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker"] + (["--stdin"] if a.stdin else [])
    procs = {k: subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(t)}, cwd=tempfile.gettempdir(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k, t in trees.items()}
    got: dict[str, list[dict[str, Any]]] = {k: [] for k in trees}
    try:
        for k, p in procs.items():
            imported = json.loads(p.stdout.readline())["poolui"]  # type: ignore[union-attr]
            assert Path(imported).resolve().is_relative_to(trees[k].resolve()), f"{k} imported {imported}"
        order = [first, *(k for k in trees if k != first)]
        for _ in range(a.batches):
            for k in order:
                procs[k].stdin.write(f"{a.batch}\n")  # type: ignore[union-attr]
                procs[k].stdin.flush()  # type: ignore[union-attr]
                got[k].append(json.loads(procs[k].stdout.readline()))  # type: ignore[union-attr]
            order.reverse()
    finally:
        for p in procs.values():
            p.communicate("\n", timeout=120)
    return got


def main(a: argparse.Namespace) -> None:
    refs = {"before": git("rev-parse", "--short", a.before), "after": git("rev-parse", "--short", a.after)}
    batches: dict[str, list[dict[str, Any]]] = {k: [] for k in refs}
    load0 = os.getloadavg()
    with worktrees(refs, "poolui-exec-hop-") as trees:
        for r in range(a.rounds):
            for k, got in run_round(trees, a, "before" if r % 2 == 0 else "after").items():
                batches[k] += got
    load1 = os.getloadavg()
    n = a.rounds * a.batches * a.batch
    print(f"{a.rounds} rounds x {a.batches} batches x {a.batch} execs of {'`cat` with stdin' if a.stdin else '`true`'}"
          f" a tree, in turns batch by batch; {os.cpu_count()} cores; 1-min load {load0[0]:.2f} at the start, "
          f"{load1[0]:.2f} at the end")
    print(f"{'':8}{'commit':>9}{'p50 ms':>9}{'p99 ms':>9}{'sandbox CPU us':>16}{'ctl CPU us':>12}  (CPU: an exec)")
    summary: dict[str, dict[str, float]] = {}
    for k in refs:
        walls = [w for b in batches[k] for w in b["walls"]]
        summary[k] = {"p50": pct(walls, 50) * 1000, "p99": pct(walls, 99) * 1000,
                      **{c: sum(b[c] for b in batches[k]) / n * 1e6 for c in ("cpu", "own")}}
        print(f"{k:<8}{refs[k]:>9}{summary[k]['p50']:9.3f}{summary[k]['p99']:9.2f}{summary[k]['cpu']:16.0f}"
              f"{summary[k]['own']:12.0f}")
    pairs = list(zip(batches["after"], batches["before"], strict=True))
    diffs = sorted((pct(x["walls"], 50) - pct(y["walls"], 50)) * 1000 for x, y in pairs)
    b, f = summary["before"], summary["after"]
    print(f"after - before: p50 {f['p50'] - b['p50']:+.3f} ms (after / before {f['p50'] / b['p50']:.2f}); of the "
          f"{len(diffs)} pairs of batches run back to back, median {pct(diffs, 50):+.3f} ms, middle half "
          f"{pct(diffs, 25):+.3f} to {pct(diffs, 75):+.3f}; sandbox CPU {f['cpu'] - b['cpu']:+.0f} us an exec")
    print(json.dumps({"before": refs["before"], "after": refs["after"], "load": [load0[0], load1[0]], **summary,
                      "batch_diff": [pct(diffs, 25), pct(diffs, 50), pct(diffs, 75)]}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4, help="rounds: both trees' sandboxes made anew in each")
    ap.add_argument("--batches", type=int, default=20, help="batches a round and tree")
    ap.add_argument("--batch", type=int, default=20, help="execs a batch")
    ap.add_argument("--before", default="HEAD~1", help="the reference commit")
    ap.add_argument("--after", default="HEAD", help="the commit measured against it")
    ap.add_argument("--stdin", action="store_true", help="exec `cat` with stdin instead of `true`")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        asyncio.run(worker(args.stdin))
    else:
        main(args)
