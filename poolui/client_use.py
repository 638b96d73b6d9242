"""The control verbs that use a claimed sandbox, over HTTP: exec and run read the server's NDJSON stream as
it comes; files go as raw bytes. See server/use_routes.py for the wire shape."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from .client_sync import error_from
from .errors import PoolError
from .sandbox_io import DEFAULT_EXEC_TIMEOUT, ExecChunk, ExecResult, check_dir, check_path

if TYPE_CHECKING:
    from .errors import ServerUnreachable

STREAM_SLACK = 10.0  # beyond the command's own timeout (and a run's claim wait) before the client gives up


def _q(part: str) -> str:
    return quote(part, safe="")


def _q_path(path: str) -> str:
    """A checked sandbox path for the URL (checked here too, so a bad one is refused before it is sent and
    never normalised away by the URL layer)."""
    return quote(check_path(path), safe="/")


def _q_dir(path: str) -> str:
    return quote(check_dir(path), safe="/")


def stdin_fields(stdin: bytes | str) -> dict[str, Any]:
    if isinstance(stdin, str):
        return {"stdin": stdin} if stdin else {}
    try:
        return {"stdin": stdin.decode()} if stdin else {}
    except UnicodeDecodeError:
        return {"stdin_base64": base64.b64encode(stdin).decode()}


def files_fields(files: dict[str, bytes | str] | None) -> dict[str, Any]:
    """A claim's files as the API takes them: text as it is, other bytes in base64."""
    text: dict[str, str] = {}
    b64: dict[str, str] = {}
    for path, data in (files or {}).items():
        if isinstance(data, str):
            text[path] = data
            continue
        try:
            text[path] = data.decode()
        except UnicodeDecodeError:
            b64[path] = base64.b64encode(data).decode()
    return {**({"files": text} if text else {}), **({"files_base64": b64} if b64 else {})}


def parse_line(raw: str) -> ExecChunk | ExecResult:
    d = json.loads(raw)
    if d.get("done"):
        return ExecResult.from_dict(d)
    data = base64.b64decode(d["base64"]) if "base64" in d else str(d.get("data", "")).encode()
    return ExecChunk(str(d["stream"]), data)


class RemoteUse:
    """Mixed into PoolClient, whose httpx client and error mapping these use."""

    http: httpx.AsyncClient
    timeout: float
    url: str

    def unreachable(self, e: Exception) -> ServerUnreachable:
        raise NotImplementedError  # PoolClient's

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        raise NotImplementedError  # PoolClient's

    async def _stream(self, path: str, body: dict[str, Any], wait: float) -> AsyncIterator[ExecChunk | ExecResult]:
        try:
            async with self.http.stream("POST", path, json=body,
                                        timeout=httpx.Timeout(self.timeout, read=wait + STREAM_SLACK)) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise error_from(r.status_code, r.content)
                ended = False
                async for raw in r.aiter_lines():
                    if raw:
                        item = parse_line(raw)
                        ended = isinstance(item, ExecResult)
                        yield item
                if not ended:
                    raise PoolError(f"the server at {self.url} ended the output before saying how the command ended")
        except httpx.TransportError as e:
            raise self.unreachable(e) from None

    async def exec(self, pool: str, sandbox_id: str, argv: list[str], env: dict[str, str] | None = None,
                   cwd: str = "", stdin: bytes | str = b"", timeout: float | None = None,
                   max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """As PoolManager.exec: chunks as the server streams them, then one ExecResult."""
        body: dict[str, Any] = {"argv": list(argv), "cwd": cwd, **stdin_fields(stdin)}
        for key, value in (("env", env), ("timeout", timeout), ("max_output", max_output)):
            if value is not None:
                body[key] = value
        wait = timeout if timeout is not None else DEFAULT_EXEC_TIMEOUT
        async for item in self._stream(f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/exec", body, wait):
            yield item

    async def run(self, pool: str, argv: list[str], env: dict[str, str] | None = None,
                  files: dict[str, bytes | str] | None = None, cwd: str = "", stdin: bytes | str = b"",
                  timeout: float | None = None, claim_timeout: float | None = None,
                  max_output: int | None = None) -> AsyncIterator[ExecChunk | ExecResult]:
        """As PoolManager.run: the server claims, runs and releases; the output streams here."""
        body: dict[str, Any] = {"argv": list(argv), "cwd": cwd, **stdin_fields(stdin), **files_fields(files)}
        for key, value in (("env", env), ("timeout", timeout), ("claim_timeout", claim_timeout),
                           ("max_output", max_output)):
            if value is not None:
                body[key] = value
        wait = (timeout or DEFAULT_EXEC_TIMEOUT) + (claim_timeout or 120.0)
        async for item in self._stream(f"/pools/{_q(pool)}/run", body, wait):
            yield item

    async def put_file(self, pool: str, sandbox_id: str, path: str, data: bytes, mode: int = 0o644) -> int:
        """As PoolManager.put_file (mode is not sent: files arrive with mode 0644)."""
        target = f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/files/{_q_path(path)}"
        return int((await self._raw("PUT", target, data, "application/octet-stream")).json()["size"])

    async def put_tar(self, pool: str, sandbox_id: str, path: str, data: bytes) -> int:
        """As PoolManager.put_tar."""
        target = f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/tar/{_q_dir(path)}"
        r = await self._raw("PUT", target, data, "application/x-tar")
        return int(r.json()["files"])

    async def get_tar(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """As PoolManager.get_tar."""
        return (await self._raw("GET", f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/tar/{_q_dir(path)}")).content

    async def _raw(self, method: str, target: str, data: bytes | None = None, ctype: str = "") -> httpx.Response:
        try:
            r = await self.http.request(method, target, content=data,
                                        headers={"content-type": ctype} if ctype else None)
        except httpx.TransportError as e:
            raise self.unreachable(e) from None
        if r.status_code >= 400:
            raise error_from(r.status_code, r.content)
        return r

    async def get_file(self, pool: str, sandbox_id: str, path: str) -> bytes:
        """As PoolManager.get_file."""
        return (await self._raw("GET", f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/files/{_q_path(path)}")).content
