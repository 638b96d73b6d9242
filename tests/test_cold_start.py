"""What a local sandbox's cold start runs: the watchdog, and the forwarder it forks for the claim URL, start on
every create, so what they import is on the critical path (bench/isolation_fixes.py measures the time)."""

from __future__ import annotations

import _socket
import subprocess
import threading
from pathlib import Path

import pytest

from poolui.providers.local import _forward, _libc
from poolui.providers.local.host import PYTHON

LOCAL = Path(_forward.__file__).parent
# Each costs the interpreter milliseconds to import (signal and socket pull in enum, functools, collections).
HEAVY = {"signal", "enum", "functools", "collections", "ctypes", "socket", "threading", "typing", "selectors"}


def imported_by(code: str) -> set[str]:
    """The modules a fresh watchdog interpreter (-I -S, as launch.py starts it) holds after `code`."""
    run = f"import sys; sys.path[:0] = [{str(LOCAL)!r}]; {code}; print(' '.join(sys.modules))"
    out = subprocess.run([PYTHON, "-I", "-S", "-c", run], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_watchdog_starts_without_the_heavy_modules() -> None:
    assert imported_by("import _watchdog") & HEAVY == set()


def test_the_forwarder_has_its_libc_calls_without_ctypes() -> None:
    # what the watchdog loads before it forks the forwarder, and what the forwarder calls after the fork
    got = imported_by("import _watchdog, _libc; _libc.load('prctl', 'setns'); _libc.die_with_parent(9)")
    assert got & HEAVY == set()


def test_a_failed_libc_call_says_its_errno() -> None:
    with pytest.raises(OSError) as e:
        _libc.setns(-1, 0)
    assert e.value.errno == 9  # EBADF


def test_the_forwarder_waits_for_the_server_to_listen() -> None:
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused, as before a server's listen()
    port = server.getsockname()[1]
    done = threading.Event()

    def wait() -> None:
        _forward.wait_for_server(port, 0.0)
        done.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        assert not done.wait(0.1)  # refused so far: still waiting
        server.listen(1)
        assert done.wait(10)
    finally:
        server.close()
        waiter.join(10)


def test_the_early_start_makes_the_cgroups_beside_the_descriptors_the_watchdog_places(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "tasks").write_text("")  # a v1 hierarchy's, where the early thread moves itself
    cg, after = base / "poolui" / "ns" / "pool" / "m1", tmp_path / "sandbox-argv"
    code = f"""import os, sys, time
sys.path[:0] = [{str(LOCAL)!r}]
import _cgroups
_cgroups.start_early(sys.argv)
null = os.open(os.devnull, os.O_RDONLY)
for at in range(3, 9):  # placed while the early thread runs, as the watchdog places its own
    os.dup2(null, at)
made, _ = _cgroups.make_cgroups([{str(cg)!r}], 0, 0)
deadline = time.monotonic() + 10
while not open({str(base / "tasks")!r}).read() and time.monotonic() < deadline:
    time.sleep(0.005)
print(made == [{str(cg)!r}], all(os.path.samestat(os.fstat(at), os.fstat(null)) for at in range(3, 9)))
"""
    argv = [PYTHON, "-I", "-S", "-c", code, "poolui-watchdog", f"cg={cg}", "--", f"cg={after}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.split() == ["True", "True"]
    assert (base / "tasks").read_text().strip().isdigit()  # the thread's own id: it moved only itself
    assert not after.exists()  # a word of the sandbox's own argv is not an order
