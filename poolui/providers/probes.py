"""Readiness and health probes that any provider can use: HTTP GET (2xx), TCP connect, exec (exit 0)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from ..errors import ReadinessTimeout, SandboxDied
from .base import ProbeResult


async def http_get(url: str, path: str, timeout: float) -> ProbeResult:
    """GET url+path over a fresh connection; ok on a 2xx status line. Plain http only (loopback servers)."""
    start = time.monotonic()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            line = await reader.readline()
        status = line.split(b" ", 2)
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        ok = 200 <= code < 300
        return ProbeResult(ok, f"HTTP {code}" if code else "no HTTP status line", time.monotonic() - start)
    except TimeoutError:
        return ProbeResult(False, f"HTTP GET {path}: no answer in {timeout:g}s", time.monotonic() - start)
    except OSError as e:
        return ProbeResult(False, f"HTTP GET {path}: {e.strerror or e}", time.monotonic() - start)
    finally:
        if writer is not None:
            writer.close()


async def tcp_connect(host: str, port: int, timeout: float) -> ProbeResult:
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
        writer.close()
        return ProbeResult(True, "TCP connect ok", time.monotonic() - start)
    except TimeoutError:
        return ProbeResult(False, f"TCP connect: no answer in {timeout:g}s", time.monotonic() - start)
    except OSError as e:
        return ProbeResult(False, f"TCP connect: {e.strerror or e}", time.monotonic() - start)


async def run_exec(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> ProbeResult:
    start = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    except OSError as e:
        return ProbeResult(False, f"exec {argv[0]}: {e.strerror or e}", time.monotonic() - start)
    try:
        async with asyncio.timeout(timeout):
            rc = await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ProbeResult(False, f"exec {argv[0]}: still running after {timeout:g}s", time.monotonic() - start)
    return ProbeResult(rc == 0, f"exec {argv[0]}: exit {rc}", time.monotonic() - start)


async def poll_until_ready(
    probe: Callable[[], Awaitable[ProbeResult]],
    alive: Callable[[], bool],
    timeout: float,
    interval: float,
    what: str,
) -> None:
    """Probe every `interval` until it passes; SandboxDied as soon as `alive()` is False; ReadinessTimeout after."""
    deadline = time.monotonic() + timeout
    last = ProbeResult(False, "not probed yet")
    before = last
    while True:
        if not alive():
            raise SandboxDied(f"{what} exited before it was ready (last probe: {last.detail})")
        before, last = last, await probe()
        if last.ok:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            # The deadline may have cut the last probe short ("no answer in 0.05s"): the one before says more.
            seen = last.detail if before.detail in (last.detail, "not probed yet") else \
                f"{last.detail}; the one before: {before.detail}"
            raise ReadinessTimeout(f"{what} not ready after {timeout:g}s (last probe: {seen})")
        await asyncio.sleep(min(interval, left))
