"""Using a local sandbox: exec and files go to the agent that runs inside it (_agent.py), so a command runs
in the sandbox's own namespaces, cgroups, limits and root, never on the host.

Chosen over entering the sandbox's namespaces from outside (setns): the agent needs no privilege, works
the same with and without bubblewrap, is inside the sandbox's cgroups and limits by birth, and kills a
timed-out command from inside; a setns() path would need root and a second copy of the sandbox's
shape (namespaces, root, cgroups, environment) kept in step with bwrap's. bench/exec_roundtrip.py
measures what it costs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import NotSupported, SandboxDied
from ...sandbox_io import ExecChunk, ExecRequest, ExecResult
from . import agent_client, agent_zip
from .host import PYTHON, under

if TYPE_CHECKING:
    from ..base import Sandbox
    from .options import LocalOptions

AGENT_DIR = str(Path(__file__).parent)
SETPRIV = "/usr/bin/setpriv"  # util-linux: drops the server to the sandbox's user (_userns.py)


def agent_argv(cmd: list[str], work: str, sandboxed: bool, drop: tuple[int, int] | None = None) -> list[str]:
    """The sandbox's command with its agent started beside it (see _agent.py); the agent's cached bytecode is
    used, so there is no compile on every start. With `drop` (uid, gid), the shell is the user namespace's
    root (_userns.py): it gives the work directory to that user, and the server runs as it, with no
    capability left (setpriv), while the agent stays root there."""
    where = agent_zip.MOUNT if sandboxed else AGENT_DIR
    code = f"import sys; sys.path[:0] = [{where!r}]; import _agent; _agent.main()"
    # The server in the background, the agent in the shell's place: its child, which a reset restarts.
    agent = 'exec "$py" -I -S -c "$code" "$!" "$w" {u} {g} "$@" 7>&- 8>&-'
    if drop is None:
        script = 'py=$0 code=$1 w=$2; shift 2; "$@" 3>&- 7>&- 8>&- & ' + agent.format(u="''", g="''")
        return ["/bin/sh", "-c", script, PYTHON, code, work, *cmd]
    u, g = drop
    script = (f'py=$0 code=$1 w=$2; shift 2; chown {u}:{g} "$w" || exit 125; {SETPRIV} --reuid={u} --regid={g} '
              f'--clear-groups --inh-caps=-all -- "$@" 3>&- 7>&- 8>&- & ' + agent.format(u=u, g=g))
    return ["/bin/sh", "-c", script, PYTHON, code, work, *cmd]


class AgentUse:
    """The exec and file half of LocalProvider."""

    opts: LocalOptions
    _use_bwrap: bool

    def _member_dir(self, member_id: str) -> Path:
        raise NotImplementedError  # LocalProvider's

    def alive(self, sb: Sandbox) -> bool:
        raise NotImplementedError  # LocalProvider's

    @property
    def has_agent(self) -> bool:
        # Under bubblewrap the agent runs on the sandbox's own interpreter, which must be one it can see.
        return self.opts.agent and (not self._use_bwrap or under(PYTHON, ["/usr"]))

    def _socket(self, sb: Sandbox) -> Path:
        if not self.has_agent:
            raise NotSupported("this pool's sandboxes run without an agent ([pools.NAME.local] agent = false, "
                               "or no python3 under /usr for bubblewrap): exec and files are not available")
        if not self.alive(sb):
            raise SandboxDied(f"sandbox {sb.member_id} has ended")
        return self._member_dir(sb.member_id) / agent_client.SOCKET

    async def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command inside the sandbox: its output as it comes, then one ExecResult."""
        async with aclosing(agent_client.run(self._socket(sb), req)) as items:
            async for item in items:
                yield item

    async def put_file(self, sb: Sandbox, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` to `path` under the work directory (parents made; symlinks on the way refused)."""
        await agent_client.put(self._socket(sb), path, data, mode)

    async def put_stream(self, sb: Sandbox, path: str, size: int, chunks: AsyncIterator[bytes],
                         mode: int = 0o644) -> None:
        """As put_file, the data sent on to the agent chunk by chunk as it comes."""
        await agent_client.put_stream(self._socket(sb), path, size, chunks, mode)

    async def get_file(self, sb: Sandbox, path: str, limit: int) -> bytes:
        """The file at `path` under the work directory; InvalidRequest when larger than `limit` bytes."""
        return await agent_client.get(self._socket(sb), path, limit)

    async def list_files(self, sb: Sandbox, path: str, most: int) -> list[tuple[str, int]]:
        """The regular files under a directory of the work directory ('' for all), relative to it, with their
        sizes; InvalidRequest past `most` entries, or a path or name longer than check_path allows."""
        return await agent_client.listing(self._socket(sb), path, most)

    async def reset(self, sb: Sandbox, argv: tuple[str, ...]) -> None:
        """Make the sandbox as it was before its claim (see _agent.reset); ProviderError when that fails."""
        await agent_client.reset(self._socket(sb), argv, self._use_bwrap)
