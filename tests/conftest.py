"""Fixtures for every test: no sandbox process may outlive the test that started it."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator

import pytest

# The Docker engine and the fake Modal API, shared by every module that needs them (session fixtures made once).
pytest_plugins = ["docker_support", "modal_support"]

WATCHDOG_MARKER = b"poolui-watchdog"  # poolui.providers.local._watchdog.MARKER
ENV_MARKER = b"POOLUI_SANDBOX="
EGRESS_NETNS = b"--netns\0/proc/self/fd/"  # poolui.providers.local._egress.argv


@pytest.fixture(autouse=True, scope="session")
def _config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's own poolui config (the default pool file's copy, the keymap):
    every test and every process it starts sees a config directory of the run's own."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    yield
    patch.undo()


# Tests that must not overlap when the suite runs on several workers (pytest-xdist): one Docker test stops
# and restarts the engine every other Docker test uses, and the demo tests look for any `poolui-demo-*`
# directory or process on the machine. A file lock shared by the workers of a run (and by runs at once)
# keeps them apart: Docker tests hold it shared, the engine's stopper and the demo tests exclusive.
DEMO_TESTS = {"test_demo_with_the_bundled_pool_file_leaves_nothing_behind", "test_demo_json",
              "test_shell_examples_run_in_order", "test_a_plain_install_runs_from_any_directory"}


@pytest.fixture(autouse=True)
def _machine_wide(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    names = request.fixturenames
    if "stoppable_engine" in names or "engine" in names:
        lock, mode = "docker", fcntl.LOCK_EX if "stoppable_engine" in names else fcntl.LOCK_SH
    elif request.node.originalname in DEMO_TESTS:
        lock, mode = "demo", fcntl.LOCK_EX
    else:
        yield
        return
    # The parent of the basetemp is shared by a run's workers (each has popen-gwN under it).
    with open(tmp_path_factory.getbasetemp().parent / f"poolui-{lock}.lock", "w") as f:
        fcntl.flock(f, mode)  # released when the file closes
        yield


def _watchdog_child(pid: str) -> bool:
    with open(f"/proc/{pid}/stat", "rb") as f:
        ppid = f.read().rsplit(b")", 1)[1].split()[1].decode()
    with open(f"/proc/{ppid}/cmdline", "rb") as f:
        return WATCHDOG_MARKER in f.read()


def _leftovers(root: bytes) -> dict[int, str]:
    """Processes of this pytest run's sandboxes: watchdogs whose argv names a path under the run's temp
    root, and plain-process sandboxes (HOME under that root) that got away from their watchdog."""
    found: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            if WATCHDOG_MARKER in cmd and root in cmd:
                found[int(name)] = "watchdog"
                continue
            if cmd.startswith(b"/usr/bin/pasta\0") and EGRESS_NETNS in cmd:  # a watchdog's pasta (_egress.py)
                if not _watchdog_child(name):  # with its watchdog alive it is that watchdog's to end
                    found[int(name)] = "pasta"
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(ENV_MARKER) for e in env) and any(e.startswith(b"HOME=" + root) for e in env):
            found[int(name)] = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _wait_gone(root: bytes, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := _leftovers(root)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


@pytest.fixture(autouse=True)
def no_leftover_sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail a test that leaves sandbox processes running, and kill them so the next test starts clean."""
    yield
    root = str(tmp_path_factory.getbasetemp()).encode() + b"/"
    left = _wait_gone(root, 1.0)  # a watchdog may be finishing its own cleanup
    if not left:
        return
    for pid, what in left.items():
        # A watchdog cleans up after itself on SIGTERM; a runaway sandbox process just dies.
        try:
            os.kill(pid, signal.SIGTERM if what == "watchdog" else signal.SIGKILL)
        except OSError:
            pass
    for pid in _wait_gone(root, 3.0):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    pytest.fail("sandbox processes outlived the test (now killed): "
                + "; ".join(f"pid {pid} {what}" for pid, what in left.items()))
