"""Probing a container from the host: TCP through docker-proxy, and exec inside it (blocking SDK calls,
run on the provider's thread pool)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ..base import ProbeResult


async def tcp_through_proxy(port: int, timeout: float) -> ProbeResult:
    """docker-proxy accepts on the host port even when nothing listens inside, then hangs up at once;
    so a connection only counts when it is still open a moment later (or the server spoke)."""
    start = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            data = await asyncio.wait_for(reader.read(1), min(0.05, timeout))
        except TimeoutError:
            data = b"open"
        ok = bool(data)
        return ProbeResult(ok, "TCP connect ok" if ok else "TCP: closed at once (nothing listening inside)",
                           time.monotonic() - start)
    except (TimeoutError, OSError) as e:
        return ProbeResult(False, f"TCP connect: {e or 'timed out'}", time.monotonic() - start)
    finally:
        if writer is not None:
            writer.close()
            # Retrieve how the connection ended (docker-proxy resets it): else asyncio logs "Future exception
            # was never retrieved" for every probe of a container not listening yet.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await writer.wait_closed()


def exec_blocking(api: Any, cid: str, argv: list[str], user: str = "") -> tuple[int, str]:
    """Exit code and the output's last line; exec_start returns when the process ends. `user`: as whom
    ("" the container's own)."""
    exec_id = api.exec_create(cid, argv, stdout=True, stderr=True, user=user)["Id"]
    # not stream=True: the SDK then leaves the hijacked socket open
    tail = (api.exec_start(exec_id) or b"")[-512:]
    rc = exit_code_of(api, exec_id)
    lines = tail.decode(errors="replace").strip().splitlines()
    return (-1 if rc is None else int(rc)), (lines[-1][:200] if lines else "")


def exit_code_of(api: Any, exec_id: str) -> int | None:
    """An ended exec's exit code (None when the engine has not recorded it within 2 s)."""
    info = api.exec_inspect(exec_id)
    deadline = time.monotonic() + 2.0
    while info.get("Running") and time.monotonic() < deadline:  # the engine records the exit a bit later
        time.sleep(0.01)
        info = api.exec_inspect(exec_id)
    rc = info.get("ExitCode")
    return None if rc is None else int(rc)


def container_state(api: Any, cid: str) -> str | None:
    """None while the container runs; else how it ended."""
    import docker.errors

    try:
        st = api.inspect_container(cid)["State"]
    except docker.errors.NotFound:
        return "container removed"
    if st.get("Running"):
        return None
    return f"exited with code {st.get('ExitCode')}" + (" (OOM-killed)" if st.get("OOMKilled") else "")
