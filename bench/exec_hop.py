"""The exec round trip of a claimed local (bubblewrap) sandbox, two commits taking turns in one run, with
the CPU each exec costs inside the sandbox: where the agent's hop to its spawner (issue 25) shows.

    .venv/bin/python bench/exec_hop.py [--rounds 6] [--execs 300] [--before HEAD~1] [--after HEAD] [--stdin]

Each commit is checked out in a temporary git worktree (removed at the end) and measured in a subprocess
of this interpreter with PYTHONPATH=<worktree>; the run stops if a subprocess imported another poolui. The
trees take turns round by round (each goes first in every other round), so the noise of this shared host
falls on both alike. Each round starts a PoolManager with an `isolated` reuse pool of one, claims it, runs
20 execs unmeasured (a root controller's spawner starts after the second), then `--execs` execs of `true`
(with `--stdin`, of `cat` with 3 bytes in), each timed, and reads the CPU time of every process of the
sandbox (/proc/PID/stat: its own and its reaped children's, so the commands count) and of the controller
(this process) before and after them.

Prints per tree: the p50 and p99 of the round trip, the spread of the rounds' p50s, and the CPU per exec
inside the sandbox and in the controller (medians over rounds); then after - before and after / before.
"""

from __future__ import annotations

import argparse
import asyncio
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

from isolation_fixes import REPO, git

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


async def worker(execs: int, stdin: bool) -> dict[str, Any]:
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
            for _ in range(20):
                r = await collect(mgr.exec("hop", c.id, argv, stdin=data))
                assert r.exit_code == 0 and r.stdout == data, r
            member = member_of(c.id)
            walls: list[float] = []
            cpu0, own0 = sandbox_cpu(member), time.process_time()
            for _ in range(execs):
                t0 = time.perf_counter()
                r = await collect(mgr.exec("hop", c.id, argv, stdin=data))
                walls.append(time.perf_counter() - t0)
                assert r.exit_code == 0 and r.stdout == data, r
            cpu = (sandbox_cpu(member) - cpu0) / execs
            own = (time.process_time() - own0) / execs
            await mgr.release("hop", c.id)
    return {"poolui": poolui.__file__, "walls": walls, "cpu": cpu, "own": own}


def member_of(sid: str) -> str:
    """The POOLUI_SANDBOX value (namespace/pool/member) of the sandbox `sid`, from its processes."""
    for env in environs().values():
        for var in env.split(b"\0"):
            if var.startswith(b"POOLUI_SANDBOX=") and var.endswith(b"/" + sid.encode()):
                return var.split(b"=", 1)[1].decode()
    raise SystemExit(f"no process of {sid} found")


def run_round(tree: Path, a: argparse.Namespace) -> dict[str, Any]:
    """One tree's round, in a subprocess that imports that tree's poolui (checked)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--execs", str(a.execs)]
    out = subprocess.check_output(argv + (["--stdin"] if a.stdin else []), env={**os.environ, "PYTHONPATH": str(tree)},
                                  cwd=tempfile.gettempdir(), timeout=900)
    got: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert Path(got["poolui"]).resolve().is_relative_to(tree.resolve()), f"{tree}'s round imported {got['poolui']}"
    return got


def turns(refs: dict[str, str], rounds: int) -> Iterator[tuple[str, Path]]:
    """Each tree's worktree (removed at the end), `rounds` times, each going first in every other round."""
    base = Path(tempfile.mkdtemp(prefix="poolui-exec-hop-"))
    try:
        for k, ref in refs.items():
            git("worktree", "add", "--detach", str(base / k), ref)
        for r in range(rounds):
            yield from ((k, base / k) for k in (list(refs) if r % 2 == 0 else list(refs)[::-1]))
    finally:
        for k in refs:
            if (base / k).exists():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base / k)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def main(a: argparse.Namespace) -> None:
    refs = {"before": git("rev-parse", "--short", a.before), "after": git("rev-parse", "--short", a.after)}
    rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in refs}
    load0 = os.getloadavg()
    for k, tree in turns(refs, a.rounds):
        rounds[k].append(run_round(tree, a))
    load1 = os.getloadavg()
    print(f"{a.rounds} rounds x {a.execs} execs of {'`cat` with stdin' if a.stdin else '`true`'}, the trees "
          f"alternating; {os.cpu_count()} cores; 1-min load {load0[0]:.2f} at the start, {load1[0]:.2f} at the end")
    print(f"{'':8}{'commit':>9}{'p50 ms':>9}{'p99 ms':>9}{'round p50s ms':>18}{'sandbox CPU us':>16}{'ctl CPU us':>12}")
    summary: dict[str, dict[str, float]] = {}
    for k in refs:
        walls = [w for r in rounds[k] for w in r["walls"]]
        p50s = [pct(r["walls"], 50) * 1000 for r in rounds[k]]
        cpu, own = pct([r["cpu"] for r in rounds[k]], 50) * 1e6, pct([r["own"] for r in rounds[k]], 50) * 1e6
        summary[k] = {"p50": pct(walls, 50) * 1000, "p99": pct(walls, 99) * 1000, "cpu": cpu, "own": own}
        print(f"{k:<8}{refs[k]:>9}{summary[k]['p50']:9.3f}{summary[k]['p99']:9.2f}"
              f"{min(p50s):9.3f} -{max(p50s):6.3f}{cpu:16.0f}{own:12.0f}")
    b, f = summary["before"], summary["after"]
    print(f"after - before: p50 {f['p50'] - b['p50']:+.3f} ms, sandbox CPU {f['cpu'] - b['cpu']:+.0f} us an exec; "
          f"after / before: p50 {f['p50'] / b['p50']:.2f}")
    pairs = zip(rounds["after"], rounds["before"], strict=True)
    diffs = [(pct(x["walls"], 50) - pct(y["walls"], 50)) * 1000 for x, y in pairs]
    print(f"per round, after - before p50: {' '.join(f'{d:+.3f}' for d in diffs)} ms")
    print(json.dumps({"before": refs["before"], "after": refs["after"], "load": [load0[0], load1[0]], **summary}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6, help="rounds; each tree runs once in each")
    ap.add_argument("--execs", type=int, default=300, help="measured execs per round and tree")
    ap.add_argument("--before", default="HEAD~1", help="the reference commit")
    ap.add_argument("--after", default="HEAD", help="the commit measured against it")
    ap.add_argument("--stdin", action="store_true", help="exec `cat` with stdin instead of `true`")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(args.execs, args.stdin))))
    else:
        main(args)
