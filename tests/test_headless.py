"""The headless CLI without a server, and `demo` (the README's first command): imports, exit codes, formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from poolui.core.model import PoolSnapshot
from poolui.headless.check import assess, check_line
from poolui.headless.output import Nagios

PYTHON = sys.executable
HEAVY = ("textual", "fastapi", "uvicorn", "starlette", "pydantic", "rich")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("POOLUI_")}
    e.update(env or {})
    return subprocess.run([PYTHON, "-m", "poolui.cli", "--headless", *args], capture_output=True, text=True,
                          env=e, timeout=timeout)


def test_headless_never_imports_textual_or_the_server() -> None:
    code = (
        "import sys\n"
        "from poolui.cli import main\n"
        "for verb in (['check'], ['list'], ['claim'], ['release', 'x'], ['terminate', 'x'], ['resize', '2'],\n"
        "             ['drain'], ['pause'], ['resume'], ['maintain'], ['events', '--count', '1']):\n"
        "    rc = main(['--headless', *verb, '--server', 'http://127.0.0.1:9', '--timeout', '2'])\n"
        "    assert rc == 3, (verb, rc)\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print(heavy)\n"
    )
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "POOLUI_TOKEN": "t"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


def test_check_loads_neither_asyncio_nor_the_engine() -> None:
    """`check` has a wall-time budget (monitoring runs it every minute): the standard library's HTTP only."""
    code = (
        "import sys\n"
        "from poolui.cli import main\n"
        "assert main(['--headless', 'check', '--server', 'http://127.0.0.1:9', '--timeout', '2']) == 3\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'httpx', 'sqlite3')\n"
        "             or m.startswith(('poolui.core.manager', 'poolui.providers', 'poolui.config'))))\n"
    )
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "POOLUI_TOKEN": "t"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"


def test_check_unknown_without_a_server_or_a_readable_pool_file(tmp_path: Path) -> None:
    r = run("check", "--server", "http://127.0.0.1:9", env={"POOLUI_TOKEN": "t"})
    assert r.returncode == Nagios.UNKNOWN and r.stdout.startswith("POOLUI UNKNOWN - no poolui server at")
    r = run("check", "--json", "--server", "http://127.0.0.1:9", env={"POOLUI_TOKEN": "t"})
    assert r.returncode == 3 and json.loads(r.stdout)["status"] == "UNKNOWN"
    r = run("check", "--config", str(tmp_path / "missing.toml"))
    assert r.returncode == 3 and "cannot read the pool file" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[pools.x]\nprovider = 'local'\ncommand = ['true']\n[server]\nlisten = 'nowhere'\n")
    r = run("check", "--config", str(bad))
    assert r.returncode == 3 and "key 'listen'" in r.stdout


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("bogus").returncode == 2
    r = run("release")
    assert r.returncode == 2 and "ID" in r.stderr


def snap(**kw: object) -> PoolSnapshot:
    base: dict[str, object] = dict(
        name="web", provider="local", isolation="plain process", state="healthy", reason="", target_ready=3,
        min_ready=1, max_ready=10, max_total=20, waiting=0, members=[], config={}, taken_at=0.0,
        counts={"creating": 0, "starting": 0, "ready": 3, "claimed": 2, "failed": 0, "terminating": 0},
        metrics={"hit_rate": 0.9, "claim_latency": {"p99": 0.0012}},
    )
    base.update(kw)
    return PoolSnapshot(**base)  # type: ignore[arg-type]


def counts(ready: int, creating: int = 0) -> dict[str, int]:
    return {"creating": creating, "starting": 0, "ready": ready, "claimed": 0, "failed": 0, "terminating": 0}


@pytest.mark.parametrize(("kw", "status", "why"), [
    ({}, Nagios.OK, []),
    ({"counts": counts(2, 1)}, Nagios.WARNING, ["ready 2 below target 3"]),
    ({"state": "degraded", "reason": "3 creates failed"}, Nagios.WARNING, ["degraded: 3 creates failed"]),
    ({"counts": counts(0), "state": "degraded", "reason": "r"}, Nagios.CRITICAL,
     ["ready 0 below min_ready 1", "degraded: r"]),
    ({"state": "draining"}, Nagios.CRITICAL, ["pool is draining"]),
    ({"state": "drained", "counts": counts(0)}, Nagios.CRITICAL, ["pool is drained"]),
    ({"state": "paused"}, Nagios.OK, []),
])
def test_check_status(kw: dict[str, object], status: Nagios, why: list[str]) -> None:
    assert assess(snap(**kw)) == (status, why)


def test_check_line_is_nagios_with_perfdata() -> None:
    s = snap(counts=counts(2, 1))
    assert check_line(s, *assess(s)) == (
        "POOLUI WARNING - web: healthy ready=2/3 creating=1 claimed=0 waiting=0 hit_rate=90% p99=1.2ms; "
        "ready 2 below target 3 | ready=2;3:;1:;0;10 creating=1;;;0; claimed=0;;;0;20 waiting=0;;;0; "
        "p99_claim=0.001200s;;;0;"
    )
    s = snap(metrics={"hit_rate": None, "claim_latency": {"p99": None}})
    assert "hit_rate=n/a p99=n/a" in check_line(s, *assess(s))


def demo_leftovers() -> tuple[set[str], list[int]]:
    dirs = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("poolui-demo-")}
    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any("poolui-demo-" in a for a in p.info["cmdline"] or ()):
                procs.append(p.pid)
        except psutil.Error:
            continue
    return dirs, procs


def test_demo_with_the_bundled_pool_file_leaves_nothing_behind() -> None:
    dirs_before, _ = demo_leftovers()
    r = run("demo", timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("pool 'web' warm in ") and "claimed sandbox pu-" in lines[0]
    assert lines[1].startswith("url: http://127.0.0.1:")
    assert lines[2].startswith("answer: HTTP/1.0 200 OK") and "Directory listing" in r.stdout
    assert lines[-1].startswith("released pu-") and lines[-1].endswith("nothing left running")
    assert "warming pool 'web'" in r.stderr  # progress goes to stderr
    dirs_after, procs = demo_leftovers()
    assert dirs_after <= dirs_before and procs == []


def test_demo_json(tmp_path: Path) -> None:
    pools = tmp_path / "pools.toml"
    pools.write_text("[pools.quick]\nprovider = 'instant'\ntarget_ready = 1\nmin_ready = 0\n")
    r = run("demo", "--json", "--config", str(pools))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["pool"] == "quick" and data["released"] is True and data["claim"]["url"].startswith("instant://")
    assert data["answer"]["status_line"].startswith("(not an http URL")
    r = run("demo", "--config", str(pools), "--pool", "nope")
    assert r.returncode == 1 and "no pool named 'nope'" in r.stderr


def test_run_help_ends_with_a_run_example_and_exec_help_with_an_exec_one() -> None:
    run_help = run("run", "--help").stdout.strip().splitlines()[-1]
    assert run_help.endswith("run -- python3 -c 'print(1)'") and "exec" not in run_help
    assert run("exec", "--help").stdout.strip().splitlines()[-1].endswith("exec ID -- python3 -c 'print(1)'")


def test_drain_wait_timeout_bounds_the_whole_wait_and_names_what_is_claimed() -> None:
    """`drain --wait --timeout T` with a sandbox claimed: back after T (not an hour, not the TTL) with an
    error that names the drain and the claimed sandbox, exit 4; the pool goes on draining."""
    from server_fixtures import pool_table, served

    with served({"web": pool_table(target_ready=1, min_ready=0)}) as s:
        claimed = s.headless("claim", "--key", "job-7", "--wait", "30")
        assert claimed.returncode == 0, claimed.stderr
        sandbox = claimed.stdout.split()[0]
        # The subprocess timeout is only a backstop: before the fix this waited for the sandbox's TTL (5m).
        r = s.headless("drain", "--wait", "--timeout", "0.5", timeout=60)
        assert r.returncode == 4, (r.returncode, r.stderr)
        assert "drain of pool 'web' timed out after 0.5s" in r.stderr, r.stderr
        assert f"1 claimed: {sandbox} (key job-7, TTL " in r.stderr
        assert "warm_up_timeout" not in r.stderr and r.stdout == ""
        assert "pool is draining" in s.headless("check").stdout
        # --json says the same on stdout; --drain-timeout keeps --timeout for each request.
        r = s.headless("drain", "--wait", "--drain-timeout", "0.2", "--timeout", "10", "--json")
        data = json.loads(r.stdout)
        assert r.returncode == 4 and data["timed_out"] is True and data["state"] == "draining"
        assert [m["id"] for m in data["members"] if m["state"] == "claimed"] == [sandbox]
        # Released: the wait ends with the pool drained.
        assert s.headless("release", sandbox).returncode == 0
        r = s.headless("drain", "--wait", "--timeout", "20")
        assert r.returncode == 0 and r.stdout.startswith("web: drained"), r.stderr
