"""Exec on the fast path: plain ASGI, as claims are (fast.py). Through FastAPI's StreamingResponse an exec
of `true` took about three times what the engine takes (its task group, routing, pydantic); here the
body is decoded into a msgspec struct (the engine checks every range), the first item is awaited before
the answer starts (so a refusal is an ordinary error answer), then NDJSON lines stream out while a
watcher ends the command if the client goes away. The wire shape is use_routes.py's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator

import msgspec
from starlette.types import Receive, Send

from ..control import Control
from ..errors import InvalidRequest
from ..sandbox_io import ExecChunk, ExecResult
from .claims import wait_disconnect

NDJSON = b"application/x-ndjson"


class ExecBody(msgspec.Struct, forbid_unknown_fields=True):
    argv: list[str] = []
    env: dict[str, str] | None = None
    cwd: str = ""
    stdin: str = ""
    stdin_base64: str | None = None
    timeout: float | None = None
    max_output: int | None = None


def stdin_of(text: str, b64: str | None) -> bytes | str:
    if b64 is None:
        return text
    if text:
        raise InvalidRequest("stdin and stdin_base64: give one of them")
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("stdin_base64: not valid base64") from None


def line(item: ExecChunk | ExecResult) -> bytes:
    """One NDJSON line: a chunk as text, or as base64 when it is not UTF-8; the end with "done": true."""
    if isinstance(item, ExecResult):
        return msgspec.json.encode({**item.to_dict(), "done": True}) + b"\n"
    try:
        return msgspec.json.encode({"stream": item.stream, "data": item.data.decode()}) + b"\n"
    except UnicodeDecodeError:  # not text, or a character cut between two chunks: sent as it is
        return msgspec.json.encode({"stream": item.stream, "base64": base64.b64encode(item.data).decode()}) + b"\n"


async def serve_exec(control: Control, pool: str, sandbox_id: str, b: ExecBody, receive: Receive,
                     send: Send) -> None:
    stream = control.exec(pool, sandbox_id, b.argv, env=b.env, cwd=b.cwd, stdin=stdin_of(b.stdin, b.stdin_base64),
                          timeout=b.timeout, max_output=b.max_output)
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", NDJSON)]})
    pump = asyncio.ensure_future(_pump(stream, first, send))
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, watcher):
            task.cancel()
        await asyncio.gather(pump, watcher, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]  # the agent kills a command nobody reads


async def _pump(stream: AsyncIterator[ExecChunk | ExecResult], first: ExecChunk | ExecResult, send: Send) -> None:
    await send({"type": "http.response.body", "body": line(first), "more_body": True})
    async for item in stream:
        await send({"type": "http.response.body", "body": line(item), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
