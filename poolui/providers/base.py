"""The one contract every home of sandboxes keeps (local processes, Docker containers, Modal Sandboxes).

The engine (core/pool.py) owns every state decision; a provider only does what it is told and reports facts.
All methods run on the engine's event loop and must never block it: blocking SDK calls go to a thread,
but spawning local processes stays on the loop's thread (a parent-death signal follows the spawning thread).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..clock import Clock
from ..sandbox_io import ExecChunk, ExecRequest, ExecResult
from .common import PortPicker


@dataclass
class Sandbox:
    """A provider's handle on one sandbox.

    `ref` is JSON-serialisable and stored in SQLite so that a later manager can find the sandbox again
    (pid and start time, container id, Modal object id ...). `url` is what a claimer gets.
    """

    member_id: str
    url: str = ""
    ref: dict[str, Any] = field(default_factory=dict)
    expires_at: float = 0.0  # wall-clock time at which the provider itself kills it (hard TTL)


@dataclass
class ProbeResult:
    ok: bool
    detail: str = ""
    latency: float = 0.0


def _ignore_exit(member_id: str, how: str) -> None:
    return None


@dataclass
class ProviderContext:
    """What the engine tells a provider when it makes one.

    namespace: unique per state directory, so two managers on one machine never touch each other's sandboxes.
    on_exit: call with a member id, and how it ended when known ("exited with code 137 (OOM-killed)"),
    when a sandbox is seen to die on its own (optional, speeds up replacement; on-call sees the how).
    clock: the engine's clock; a provider that waits on time (the instant provider) waits through it.
    ports: free loopback ports, shared by every pool of one manager so two pools never pick the same one.
    """

    namespace: str
    state_dir: Path
    on_exit: Callable[[str, str], None] = _ignore_exit
    clock: Clock = field(default_factory=Clock)
    ports: PortPicker = field(default_factory=PortPicker)


class Provider(Protocol):
    kind: str  # "local", "docker", "modal", "instant"

    @property
    def isolation(self) -> str:
        """How sandboxes are isolated, for people: "bubblewrap", "plain process", "container", "modal"."""
        ...

    async def check(self) -> None:
        """Fail fast, before anything starts, when the provider cannot work (no credentials, no engine).

        Raises ProviderUnavailable with a message that says what to do; `transient=True` on it when the
        cause may pass by itself (an engine or API that does not answer), so the pool waits instead.
        """
        ...

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        """Start one sandbox that kills itself after `ttl` seconds even if the controller is gone.

        Returns once it is started (not necessarily ready). Raises ProviderError.
        """
        ...

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        """Return when the readiness probe passes; raise ReadinessTimeout or SandboxDied."""
        ...

    async def health(self, sb: Sandbox) -> ProbeResult:
        """One health probe, bounded by the pool's health timeout. Never raises."""
        ...

    def alive(self, sb: Sandbox) -> bool:
        """Cheap and synchronous: False only when the sandbox is known to be dead. Called on the claim path."""
        ...

    async def terminate(self, sb: Sandbox) -> None:
        """Kill the sandbox and everything it started; idempotent; never raises for an already-gone one."""
        ...

    async def list_ours(self) -> list[Sandbox]:
        """Every live sandbox of this pool and namespace, found by the provider's own markers
        (process marker, container labels, Modal tags), whether or not the engine knows it."""
        ...

    async def close(self) -> None:
        """Release clients and background tasks; does not terminate sandboxes."""
        ...


class SandboxUse(Protocol):
    """What a provider adds when its sandboxes can be used through poolui (local and Docker do; the engine
    answers NotSupported for a provider without them). Called only on a claimed member's sandbox."""

    def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run req.argv inside the sandbox: chunks of output as they come, then one ExecResult. On timeout
        kill the command and all it started, never the sandbox; end the command if the caller stops reading."""
        ...

    async def put_file(self, sb: Sandbox, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write under the work directory; `path` is already checked (sandbox_io.check_path); refuse a
        symlink on the way with InvalidRequest."""
        ...

    async def put_stream(self, sb: Sandbox, path: str, size: int, chunks: AsyncIterator[bytes],
                         mode: int = 0o644) -> None:
        """As put_file, for `size` bytes that come in chunks (a tar member): each passed on as it comes,
        never all held at once; InvalidRequest when the chunks do not come to `size`, and then no file
        (and no temporary file) is left."""
        ...

    async def get_file(self, sb: Sandbox, path: str, limit: int) -> bytes:
        """Read from under the work directory; FileNotFound, or InvalidRequest past `limit` bytes."""
        ...


class SandboxReset(Protocol):
    """A provider that can make a released sandbox as it was (reuse pools need it; the local one has it)."""

    async def reset(self, sb: Sandbox, argv: tuple[str, ...]) -> None:
        """Kill every process but the sandbox's server, empty its work directory, run `argv` inside it;
        raise when any of it fails (the sandbox is then terminated)."""
        ...
