"""The API's endpoints for using a claimed sandbox: exec and one-shot runs streamed as NDJSON, files in and
out as raw bytes. A claim's own token is enough for these (middleware.CLAIM_SCOPED), run excepted.

The stream is one JSON object per line: {"stream": "stdout"|"stderr", "data": TEXT} (or "base64": ...
for output that is not UTF-8 text), then one last line with "done": true and how the command ended.
`curl -N` shows it as it comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import Response, StreamingResponse

from ..control import Control
from ..sandbox_io import ExecChunk, ExecResult
from .fast import claim_files
from .fast_exec import line, stdin_of
from .routes import bearer, no_unknown_query
from .schemas import ERROR_RESPONSES, ErrorOut, ExecIn, FileOut, RunIn

NDJSON = "application/x-ndjson"
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {NDJSON: {}}, "description": "output lines as they come, then a line with \"done\": true"},
    429: {"model": ErrorOut, "description": "the sandbox already runs its pool's max_execs execs at once"}}

use_api = APIRouter(dependencies=[Security(bearer), Depends(no_unknown_query)], responses=ERROR_RESPONSES)


def _control(request: Request) -> Control:
    control: Control = request.app.state.poolui.control
    return control


def _stdin(b: ExecIn) -> bytes | str:
    return stdin_of(b.stdin, b.stdin_base64)


async def _streamed(stream: AsyncIterator[ExecChunk | ExecResult]) -> Response:
    """The first item is awaited here, so a refusal (not claimed, no such program...) is an ordinary error
    answer; the rest streams."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield line(first)
            async for item in stream:
                yield line(item)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(body(), media_type=NDJSON)


@use_api.post("/pools/{pool}/sandboxes/{sandbox_id}/exec", tags=["use"], response_class=Response,
              responses=STREAM_DOC)
async def exec_(request: Request, pool: str, sandbox_id: str, body: ExecIn) -> Response:
    """Run a command in a claimed sandbox; output streamed as it comes (served by fast_exec.py; this
    route documents it and serves it should the fast path not take it)."""
    stream = _control(request).exec(pool, sandbox_id, body.argv, env=body.env, cwd=body.cwd, stdin=_stdin(body),
                                    timeout=body.timeout, max_output=body.max_output)
    return await _streamed(stream)


@use_api.post("/pools/{pool}/run", tags=["use"], response_class=Response, responses=STREAM_DOC)
async def run(request: Request, pool: str, body: RunIn) -> Response:
    """Claim a sandbox, run one command in it (streamed like exec), release it."""
    stream = _control(request).run(pool, body.argv, env=body.env, files=claim_files(body.files, body.files_base64),
                                   cwd=body.cwd, stdin=_stdin(body), timeout=body.timeout,
                                   claim_timeout=body.claim_timeout, max_output=body.max_output)
    return await _streamed(stream)


@use_api.put("/pools/{pool}/sandboxes/{sandbox_id}/files/{path:path}", response_model=FileOut, tags=["use"],
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}})
async def put_file(request: Request, pool: str, sandbox_id: str, path: str) -> dict[str, Any]:
    """Write the request body to `path` under the work directory (parents made)."""
    data = await request.body()
    return {"path": path, "size": await _control(request).put_file(pool, sandbox_id, path, data)}


@use_api.get("/pools/{pool}/sandboxes/{sandbox_id}/files/{path:path}", tags=["use"], response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}, "description": "the file's bytes"}})
async def get_file(request: Request, pool: str, sandbox_id: str, path: str) -> Response:
    """The file at `path` under the work directory."""
    return Response(await _control(request).get_file(pool, sandbox_id, path), media_type="application/octet-stream")


TAR = "application/x-tar"


@use_api.put("/pools/{pool}/sandboxes/{sandbox_id}/tar/{path:path}", tags=["use"],
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True,
                                            "description": "a tar archive (application/x-tar)"}})
async def put_tar(request: Request, pool: str, sandbox_id: str, path: str) -> dict[str, Any]:
    """Unpack the tar in the body under `path` ('' for the work directory itself): {path, files}."""
    data = await request.body()
    return {"path": path, "files": await _control(request).put_tar(pool, sandbox_id, path, data)}


@use_api.get("/pools/{pool}/sandboxes/{sandbox_id}/tar/{path:path}", tags=["use"], response_class=Response,
             responses={200: {"content": {TAR: {}}, "description": "the directory's regular files as a tar"}})
async def get_tar(request: Request, pool: str, sandbox_id: str, path: str) -> Response:
    """The regular files under `path` as a tar archive."""
    return Response(await _control(request).get_tar(pool, sandbox_id, path), media_type=TAR)
