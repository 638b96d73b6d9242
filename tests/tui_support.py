"""Shared by the console's tests: waiting on conditions, reading the screen, pool files, leftovers."""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import tomli_w
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot

SERVER_CMD = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


async def until(pilot: Pilot[Any], cond: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    """Yield to the app until cond() is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        await pilot.pause(0.02)


def screen_text(app: App[Any]) -> str:
    """The screen as plain text, the way a person reads it (what a snapshot stores)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_pool_file(tmp_path: Path, *, server_port: int | None = None, **pool: Any) -> Path:
    """A pool file of real local sandboxes (Python HTTP servers), small and quick to warm."""
    body: dict[str, Any] = {
        "provider": "local", "command": SERVER_CMD, "target_ready": 2, "min_ready": 1, "max_ready": 6,
        "max_total": 10, "ttl": "5m", "min_remaining_ttl": "30s", "ttl_jitter": 0.0,
        "max_concurrent_creates": 4,
        "readiness": {"http": "/", "timeout": "10s", "interval": "10ms"},
        "health": {"http": "/", "interval": "1h", "timeout": "2s"},
        "maintenance_interval": "1h",
    }
    body.update(pool)
    data: dict[str, Any] = {"pools": {"web": body}}
    data["server"] = {
        # Never the default port: a developer's own `poolui serve` must not be what a test talks to.
        "listen": f"127.0.0.1:{server_port or free_port()}",
        "state_dir": str(tmp_path / "state"),
        "on_shutdown": "terminate",
    }
    path = tmp_path / "pools.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


def sandbox_processes(marker: str) -> list[psutil.Process]:
    """Processes whose command line carries `marker` (the state directory's namespace)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmd and p.pid != os.getpid():
            found.append(p)
    return found


def wait_gone(marker: str, timeout: float = 10.0) -> list[psutil.Process]:
    """Sandbox processes of `marker` still alive after `timeout` seconds (watchdogs take a moment to reap)."""
    deadline = time.monotonic() + timeout
    while (left := sandbox_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def listening(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False
