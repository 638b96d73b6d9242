"""Using a Docker sandbox: exec through the Engine's exec API, its multiplexed output read as it comes on a
thread of the provider's pool and handed to the loop; files through an exec of the container's own shell.

The Engine cannot kill an exec. Every exec carries a marker in its environment, and a timed-out one is
ended by a second exec that SIGKILLs every process carrying the marker (the command and all it started).
Files are not written with put_archive: into a tmpfs mount (the work directory is one) it answers true,
and the file never appears in the container (checked on this engine). The shell checks each path
component for a symlink; whatever it might still be raced into stays inside the container.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ...errors import FileNotFound, InvalidRequest, ProviderError
from ...sandbox_io import ExecChunk, ExecRequest, ExecResult, collect, exec_request
from .probing import exit_code_of

if TYPE_CHECKING:
    from ..base import Sandbox
    from .options import DockerOptions

MARKER = "POOLUI_EXEC"
STREAMS = {1: "stdout", 2: "stderr"}
KILL = ('for p in /proc/[0-9]*; do grep -q "$1" "$p/environ" 2>/dev/null && kill -9 "${p#/proc/}"; done; '
        "exit 0")
# $1 the path; parents are made, none may be a symlink; the file is replaced (a symlink there is replaced,
# never followed). Exit 3: a symlink on the way; 4: not a regular file; 5: too large.
WALK = ('p="$1"; d=$(dirname "$p"); c=.; IFS=/; for part in $d; do [ "$part" = . ] && continue; c="$c/$part"; '
        '[ -L "$c" ] && { echo "$c" >&2; exit 3; }; done; unset IFS; ')
PUT = WALK + ('mkdir -p "$d" && [ ! -d "$p" ] || exit 4; t="$p.poolui-put.$$"; cat > "$t" && chmod "$2" "$t" '
              '&& mv -f "$t" "$p"')
LIST = WALK + ('[ -L "$2" ] && exit 3; cd "$2" 2>/dev/null || exit 6; find . -type f -print0')
GET = WALK + ('[ -L "$p" ] && exit 3; [ -e "$p" ] || exit 6; [ -f "$p" ] || exit 4; '
              '[ $(wc -c < "$p") -le "$2" ] || exit 5; cat "$p"')


class DockerUse:
    """The exec and file half of DockerProvider."""

    opts: DockerOptions
    _executor: Any

    def _docker(self) -> Any:
        raise NotImplementedError  # DockerProvider's

    def _error(self, e: BaseException, doing: str) -> ProviderError:
        raise NotImplementedError  # DockerProvider's

    async def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        """Run a command in the container: its output as it comes, then one ExecResult."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[ExecChunk | ExecResult | BaseException] = asyncio.Queue()

        def put(item: ExecChunk | ExecResult | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        cid = sb.ref.get("container_id", "")
        job = loop.run_in_executor(self._executor, self._exec_blocking, cid, req, put)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise self._error(item, "running an exec") from item
                yield item
                if isinstance(item, ExecResult):
                    return
        finally:
            await asyncio.shield(job)  # the thread ends by itself at the command's deadline at the latest

    def _exec_blocking(self, cid: str, req: ExecRequest, put: Callable[[Any], None]) -> None:
        try:
            put(self._run(cid, req, put))
        except BaseException as e:
            put(e)

    def _run(self, cid: str, req: ExecRequest, put: Callable[[Any], None]) -> ExecResult:
        api = self._docker().api
        marker = os.urandom(8).hex()
        start = time.monotonic()
        workdir = self.opts.workdir + ("/" + req.cwd if req.cwd else "")
        eid = api.exec_create(cid, list(req.argv), stdout=True, stderr=True, stdin=bool(req.stdin),
                              environment={**dict(req.env), MARKER: marker}, workdir=workdir)["Id"]
        conn = api.exec_start(eid, socket=True)
        raw: socket.socket = getattr(conn, "_sock", conn)
        try:
            if req.stdin:
                raw.sendall(req.stdin)
            raw.shutdown(socket.SHUT_WR)  # the command's stdin ends here
            timed_out, truncated = _pump(raw, start + req.timeout, req.max_output, put)
        finally:
            raw.close()
        if timed_out:
            kill = api.exec_create(cid, ["sh", "-c", KILL, "kill", f"{MARKER}={marker}"])["Id"]
            api.exec_start(kill)
        rc = exit_code_of(api, eid)
        if rc == 126 or rc == 127:
            return ExecResult(127, error=f"{req.argv[0]}: cannot be run in the container (exit {rc})",
                              duration=time.monotonic() - start)
        signal = 9 if timed_out else None
        return ExecResult(None if signal else rc, signal, timed_out, truncated, time.monotonic() - start)

    async def put_file(self, sb: Sandbox, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` to `path` under the work directory (parents made; symlinks on the way refused)."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", PUT, "put", path, f"{mode:o}"], stdin=data)))
        _check(r, path)

    async def list_files(self, sb: Sandbox, path: str) -> list[str]:
        """The regular files under a directory of the work directory ('' for all), relative to it."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", LIST, "list", f"{path or '.'}/.", path or "."],
                                                     max_output=16 << 20)))
        _check(r, path or ".")
        return sorted(f.removeprefix("./") for f in r.stdout.decode(errors="surrogateescape").split("\0") if f)

    async def get_file(self, sb: Sandbox, path: str, limit: int) -> bytes:
        """The file at `path` under the work directory; InvalidRequest when larger than `limit` bytes."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", GET, "get", path, str(limit)],
                                                     max_output=limit)))
        _check(r, path)
        return r.stdout


def _check(r: ExecResult, path: str) -> None:
    why = {3: f"{path}: {r.stderr.decode(errors='replace').strip() or 'a part'} is a symlink; paths may not pass "
              "through symlinks",
           4: f"{path} is not a regular file", 5: f"{path} is larger than a file may be"}
    if r.exit_code == 6:
        raise FileNotFound(f"{path}: no such file or directory")
    if r.exit_code in why:
        raise InvalidRequest(why[r.exit_code])
    if not r.ok:
        raise ProviderError(f"{path}: the container's shell failed ({r.describe()}): "
                            f"{r.stderr.decode(errors='replace').strip()[:200]}")


def _pump(raw: socket.socket, deadline: float, cap: int, put: Callable[[Any], None]) -> tuple[bool, bool]:
    """Read the Engine's multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian size) until EOF or
    the deadline; (timed out, truncated)."""
    buf, sent, truncated = b"", 0, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return True, truncated
        raw.settimeout(left)
        try:
            data = raw.recv(65536)
        except TimeoutError:
            return True, truncated
        if not data:
            return False, truncated
        buf += data
        while len(buf) >= 8 and len(buf) >= 8 + int.from_bytes(buf[4:8], "big"):
            size = int.from_bytes(buf[4:8], "big")
            stream, payload, buf = buf[0], buf[8:8 + size], buf[8 + size:]
            keep = payload[:max(0, cap - sent)]
            sent += len(payload)
            truncated = truncated or len(keep) < len(payload)
            if keep and stream in STREAMS:
                put(ExecChunk(STREAMS[stream], keep))
