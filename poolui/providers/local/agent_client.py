"""Talking to a local sandbox's agent (_agent.py) over its Unix socket: exec with streamed output, files in
and out. One connection per request; the socket lives in the member's private directory."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from ...errors import FileNotFound, InvalidRequest, ProviderError, SandboxDied, TooManyExecs
from ...sandbox_io import MAX_NAME, MAX_PATH, ExecChunk, ExecRequest, ExecResult, check_path

SOCKET = "agent.sock"
STREAMS = {b"o": "stdout", b"e": "stderr"}
SLACK = 5.0  # beyond an exec's own timeout, how long the agent may take to say how it ended
# The most one frame from an agent may hold, in bytes: its output and file data come in frames of 64 KiB
# (_agent.READ), a listing in frames of about 400 KiB at most (_agent_files.BATCH); the end is a small JSON
# object. A frame that says it is larger is never read: the connection is dropped with a ProviderError.
MAX_FRAME = 1 << 20


async def _connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    dirfd = -1
    try:
        where = str(path)
        if len(where.encode()) > 100:  # a Unix socket's path is at most 107 bytes; a deep state directory
            dirfd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
            where = f"/proc/self/fd/{dirfd}/{path.name}"
        await asyncio.get_running_loop().sock_connect(sock, where)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        sock.close()
        raise SandboxDied(f"the sandbox's agent does not answer ({e.strerror}): the sandbox has ended") from None
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    return await asyncio.open_unix_connection(sock=sock, limit=1 << 20)


async def frames(path: Path, header: dict[str, Any], data: bytes = b"",
                 stream: AsyncIterator[bytes] | None = None) -> AsyncGenerator[tuple[bytes, bytes], None]:
    """Send one request (its data as bytes, or as a stream of header["size"] bytes); yield its answer's
    frames (kind, payload), the b"x" frame last."""
    reader, writer = await _connect(path)
    try:
        try:
            writer.write(json.dumps({**header, "size": len(data) if stream is None else header["size"]}).encode()
                         + b"\n")
            if stream is not None:
                await _send(writer, stream, int(header["size"]), str(header.get("path")))
            elif data:
                writer.write(data)
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            # A busy agent answers at once and closes without reading: its answer may be waiting.
            pass
        while True:
            try:
                head = await reader.readexactly(5)
                if (size := int.from_bytes(head[1:], "big")) > MAX_FRAME:
                    raise ProviderError(f"the sandbox's agent sent a frame of {size} bytes; at most {MAX_FRAME} "
                                        "are read: the connection was dropped")
                payload = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                raise SandboxDied("the sandbox ended during the request") from None
            except (BrokenPipeError, ConnectionResetError):
                # The agent accepted and closed without reading the request: only a busy agent does that
                # (its answer went with the connection, which asyncio drops on the failed write).
                raise TooManyExecs("the sandbox's agent refused the request unread (too many at once, or no "
                                   "thread left in the sandbox); try again when a request has ended") from None
            yield head[:1], payload
            if head[:1] == b"x":
                return
    finally:
        writer.close()


async def _send(writer: asyncio.StreamWriter, stream: AsyncIterator[bytes], size: int, what: str) -> None:
    """Pass the chunks on as they come, waiting for each to leave (so at most one is held here). When they
    do not come to `size`, the connection is closed short and the agent writes nothing."""
    sent = 0
    async for chunk in stream:
        sent += len(chunk)
        if sent > size:
            break
        writer.write(chunk)
        await writer.drain()
    if sent != size:
        raise InvalidRequest(f"{what}: its data came to {'more than ' if sent > size else ''}{sent} bytes, "
                             f"not the {size} it declared")


def _end(payload: bytes, doing: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(payload)
    if result.get("missing"):
        raise FileNotFound(result["error"])
    if result.get("refused") or result.get("too_large"):
        raise InvalidRequest(result["error"])
    if result.get("busy"):  # the agent's own cap, or no thread left in the sandbox (_agent.serve)
        raise TooManyExecs(f"{doing}: {result['error']}; try again when a request has ended")
    if "error" in result and "exit_code" not in result:
        raise ProviderError(f"{doing}: {result['error']}")
    return result


async def run(path: Path, req: ExecRequest) -> AsyncGenerator[ExecChunk | ExecResult, None]:
    """The command's output as it comes, then one ExecResult."""
    header = {"op": "exec", "argv": list(req.argv), "env": dict(req.env), "cwd": req.cwd,
              "timeout": req.timeout, "max_output": req.max_output}
    start = time.monotonic()
    async with asyncio.timeout(req.timeout + SLACK), aclosing(frames(path, header, req.stdin)) as answer:
        async for kind, payload in answer:
            if kind in STREAMS:
                yield ExecChunk(STREAMS[kind], payload)
            elif kind == b"x":
                res = ExecResult.from_dict(_end(payload, "exec"))
                res.duration = res.duration or time.monotonic() - start
                yield res


async def put(path: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    async for kind, payload in frames(path, {"op": "put", "path": rel, "mode": mode}, data):
        if kind == b"x":
            _end(payload, f"writing {rel}")


async def put_stream(path: Path, rel: str, size: int, chunks: AsyncIterator[bytes], mode: int = 0o644) -> None:
    """As put, the data sent on chunk by chunk as it comes."""
    async for kind, payload in frames(path, {"op": "put", "path": rel, "mode": mode, "size": size}, stream=chunks):
        if kind == b"x":
            _end(payload, f"writing {rel}")


async def get(path: Path, rel: str, limit: int) -> bytes:
    parts: list[bytes] = []
    async for kind, payload in frames(path, {"op": "get", "path": rel, "max": limit}):
        if kind == b"d":
            parts.append(payload)
        elif kind == b"x":
            _end(payload, f"reading {rel}")
    return b"".join(parts)


async def reset(path: Path, argv: tuple[str, ...], isolated: bool) -> None:
    async for kind, payload in frames(path, {"op": "reset", "argv": list(argv), "isolated": isolated}):
        if kind == b"x":
            _end(payload, "resetting the sandbox")


async def listing(path: Path, rel: str, most: int) -> list[tuple[str, int]]:
    """The regular files under `rel` with their sizes, sorted. The agent refuses, walking no further, past
    `most` entries or a path or name longer than check_path allows; what it sends is checked again here,
    so at most `most` entries are ever held."""
    where = rel or "the work directory"
    found: list[tuple[str, int]] = []
    header = {"op": "list", "path": rel, "max": most, "max_path": MAX_PATH, "max_name": MAX_NAME}
    async with aclosing(frames(path, header)) as answer:
        async for kind, payload in answer:
            if kind == b"d":
                try:
                    entries = [(str(name), int(size)) for name, size in json.loads(payload)]
                except (ValueError, TypeError):  # an agent from before sizes were listed sends names only
                    raise ProviderError(f"listing {where}: the sandbox's agent sent what is not a listing of "
                                        "files and sizes (an agent older than this controller?)") from None
                for name, _ in entries:
                    check_path(f"{rel}/{name}" if rel else name, f"a file under {where}")
                found += entries
                if len(found) > most:
                    raise InvalidRequest(f"{where} holds more than {most} files; at most {most} are listed")
            elif kind == b"x":
                _end(payload, f"listing {where}")
    return sorted(found)


async def ping(path: Path) -> None:
    """The agent answers a request: SandboxDied or ProviderError when it does not."""
    async for kind, payload in frames(path, {"op": "ping"}):
        if kind == b"x":
            _end(payload, "asking the agent")
