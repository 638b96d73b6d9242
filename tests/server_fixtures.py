"""A real `poolui serve` subprocess on a free loopback port, and the checks that it leaves nothing behind.

Port 0 lets the kernel pick the port; the server prints its URL on its first stdout line once it listens,
so tests wait on that line, never on a sleep. Every wait here polls a condition against a deadline.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import tomli_w

from poolui.client import PoolClient
from poolui.core.store import namespace_of

PYTHON = sys.executable
HTTP_SERVER = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


def until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)  # polling interval of a deadline-bounded wait, not synchronisation
        delay = min(delay * 2, 0.1)


def pool_table(provider: str = "local", **overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "provider": provider, "target_ready": 2, "min_ready": 1, "max_ready": 6, "max_total": 10,
        "ttl": "5m", "claim_timeout": "10s", "health": {"http": "/", "interval": "1h", "timeout": "2s"},
    }
    if provider == "local":
        table["command"] = HTTP_SERVER
        table["readiness"] = {"http": "/", "timeout": "15s", "interval": "20ms"}
    else:
        table["health"] = {"enabled": False}
    table.update(overrides)
    return table


def write_pool_file(path: Path, pools: dict[str, dict[str, Any]], **server: Any) -> Path:
    data: dict[str, Any] = {"pools": pools}
    if server:
        data["server"] = server
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def sandbox_processes(state_dir: Path) -> list[psutil.Process]:
    """Live processes carrying this state directory's namespace (local sandboxes and their watchdogs)."""
    ns = namespace_of(state_dir.resolve())
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(ns in part for part in p.info["cmdline"] or ()) or ns in p.environ().get("POOLUI_SANDBOX", ""):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return True
    return False


class Served:
    """One `poolui serve` process; `start()` again after it stopped runs a new one on the same state."""

    def __init__(self, workdir: Path, config: Path, extra: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.config = config
        self.state_dir = workdir / "state"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = workdir / "serve.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("POOLUI_")}

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def start(self, *extra: str, timeout: float = 30.0) -> Served:
        cmd = [PYTHON, "-m", "poolui.cli", "serve", "--config", str(self.config), "--listen", "127.0.0.1:0",
               "--state-dir", str(self.state_dir), *self.extra, *extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=self.env,
                                         cwd=self.workdir)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if "serving http://" not in line:
            self.kill()
            raise AssertionError(f"poolui serve did not start: {line!r}\n{self.log.read_text()[-3000:]}")
        self.url = line.split("serving ", 1)[1].split()[0]
        return self

    def client(self, timeout: float = 10.0) -> PoolClient:
        return PoolClient(self.url, self.token, timeout=timeout)

    def headless(self, *args: str, server: bool = True, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [PYTHON, "-m", "poolui.cli", "--headless", *args]
        e = dict(self.env)
        if server:
            e.update({"POOLUI_SERVER": self.url, "POOLUI_TOKEN": self.token})
        e.update(env or {})
        return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout, cwd=self.workdir)

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def sweep(state_dir: Path) -> None:
    """Kill whatever a test left running on purpose (kept sandboxes, a killed server's)."""
    for p in sandbox_processes(state_dir):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def served(pools: dict[str, dict[str, Any]], *extra: str, start: bool = True,
           **server: Any) -> Iterator[Served]:
    """A server in a fresh temporary directory; afterwards no process, port or directory is left."""
    workdir = Path(tempfile.mkdtemp(prefix="poolui-test-"))
    config = write_pool_file(workdir / "pools.toml", pools, **server)
    s = Served(workdir, config, extra)
    try:
        if start:
            s.start()
        yield s
    finally:
        try:
            s.kill()

            def swept() -> bool:
                sweep(s.state_dir)
                return not sandbox_processes(s.state_dir)

            until(swept, 15, "sandbox processes to exit")
            if s.url:
                assert port_closed(s.url), f"{s.url} still accepts connections"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
