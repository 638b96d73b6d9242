"""PoolClient: the control contract (poolui.control) over HTTP, raising the same errors as PoolManager.

Every call has a timeout. A claim waits on the server for up to its own `timeout` (or the pool's
claim_timeout), so its HTTP deadline is that wait plus the client's ordinary timeout.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from .client_http import Broken, Http11
from .client_rollback import Rollbacks
from .client_sync import error_from
from .client_use import RemoteUse, files_fields
from .core.holding import claimed
from .core.model import Claim, Event, Lease, MaintenanceReport, PoolSnapshot
from .errors import ClaimTimeout, PoolError, ServerUnreachable

DEFAULT_CLAIM_WAIT = 120.0  # when neither the call nor a snapshot told us the pool's claim_timeout
EVENTS_READ_TIMEOUT = 60.0  # the server sends a keep-alive every 15 s; four missed ones mean it is gone


def _q(part: str) -> str:
    return quote(part, safe="")


class RemoteEvents:
    """The server's /events stream as an EventFeed. When the server drops this client for falling behind,
    it reconnects with Last-Event-ID and goes on from the server's recent-events buffer; raises
    ServerUnreachable when the server is gone."""

    def __init__(self, client: PoolClient, pool: str | None) -> None:
        self._client = client
        self._pool = pool
        self._gen = self._follow()
        self.dropped = 0  # the server resends what this client missed, so nothing is lost for good

    def __aiter__(self) -> RemoteEvents:
        return self

    async def __anext__(self) -> Event:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _follow(self) -> AsyncGenerator[Event, None]:
        c = self._client
        last: int | None = None
        params = {"pool": self._pool} if self._pool is not None else None
        while True:
            headers = {"last-event-id": str(last)} if last is not None else {}
            try:
                async with c.http.stream("GET", "/events", params=params, headers=headers,
                                         timeout=httpx.Timeout(c.timeout, read=EVENTS_READ_TIMEOUT)) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        raise error_from(r.status_code, r.content)
                    async for event in _parse_sse(r.aiter_lines()):
                        last = event.seq
                        yield event
            except (httpx.TransportError, httpx.TimeoutException) as e:
                raise c.unreachable(e) from None
            if last is None:
                raise ServerUnreachable(f"the events stream of {c.url} ended before any event")


async def _parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    kind, data = "", ""
    async for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            if kind != "dropped":
                yield Event.from_dict(json.loads(data))
            kind, data = "", ""


class PoolClient(RemoteUse):
    """The pools of a `poolui serve`, as the control contract: the same methods, arguments and errors as
    PoolManager. `async with PoolClient(url, token) as c:` closes its connections at the end."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 100) -> None:
        """url: the server (http:// or https://); token: its bearer token (None: the server answers 401);
        timeout: of each request, in seconds (a claim adds its own wait); nothing is sent yet."""
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"authorization": f"Bearer {token}"} if token else {}
        # Loading the CA bundle costs ~40 ms (a fifth of `check`'s budget); plain http has nothing to verify.
        # httpx keeps 20 idle connections by default; many concurrent claimers then reconnect on every call.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                      trust_env=False, verify=self.url.startswith("https://"), limits=limits)
        # Request/answer calls go over poolui's own keep-alive connections (client_http.py); a transport
        # given by the caller (tests, an ASGI app in-process) and the events stream use httpx.
        self._fast = Http11(self.url, headers, max_connections) if transport is None else None
        self._claim_timeouts: dict[str, float] = {}
        self.rollbacks = Rollbacks(self.release_claim)

    @property
    def embedded(self) -> bool:
        """Always False: these pools run in the server's process."""
        return False

    async def __aenter__(self) -> PoolClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish giving back claims this client could not receive (bounded), then close its connections;
        the server and its pools go on."""
        await self.rollbacks.finish()
        if self._fast is not None:
            await self._fast.aclose()
        await self.http.aclose()

    # ------------------------------------------------------------------ transport

    def unreachable(self, e: Exception) -> ServerUnreachable:
        """The ServerUnreachable that says what a transport failure to this server means."""
        if isinstance(e, httpx.TimeoutException):
            return ServerUnreachable(f"poolui server at {self.url} did not answer in time ({type(e).__name__})")
        return ServerUnreachable(f"no poolui server at {self.url}: {e or type(e).__name__}")

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        wait = self.timeout if timeout is None else timeout
        if self._fast is not None:
            status, content = await self._fast_call(method, path, body, params, wait)
        else:
            try:
                r = await self.http.request(method, path, json=body, params=params, timeout=wait)
            except httpx.TransportError as e:  # timeouts included
                raise self.unreachable(e) from None
            status, content = r.status_code, r.content
        if status >= 400:
            raise error_from(status, content)
        try:
            return json.loads(content)
        except ValueError:
            raise PoolError(f"the server at {self.url} answered {path} with something that is not JSON") from None

    async def _fast_call(self, method: str, path: str, body: dict[str, Any] | None,
                         params: dict[str, Any] | None, wait: float) -> tuple[int, bytes]:
        assert self._fast is not None
        target = path + ("?" + urlencode(params) if params else "")
        try:
            async with asyncio.timeout(wait):
                return await self._fast.request(method, target, json.dumps(body).encode() if body else None)
        except TimeoutError:
            raise ServerUnreachable(f"poolui server at {self.url} did not answer in time (after {wait:g}s)") from None
        except (Broken, OSError) as e:
            raise ServerUnreachable(f"no poolui server at {self.url}: {e or type(e).__name__}") from None

    def _seen(self, snap: PoolSnapshot) -> PoolSnapshot:
        timeout = snap.config.get("claim_timeout") if snap.config else None
        if isinstance(timeout, int | float):
            self._claim_timeouts[snap.name] = float(timeout)
        return snap

    # ------------------------------------------------------------------ reading

    async def ping(self) -> None:
        """Raises ServerUnreachable or Unauthorized unless the server answers and accepts the token."""
        await self._call("GET", "/info")

    async def names(self) -> list[str]:
        """The pools' names, in the pool file's order."""
        return list((await self._call("GET", "/info"))["pools"])

    async def config_path(self) -> str | None:
        """The server's pool file (where resize persist writes), or None."""
        path = (await self._call("GET", "/info")).get("config_path")
        return str(path) if path else None

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        """Every pool's snapshot, in the pool file's order."""
        data = await self._call("GET", "/pools", params={"members": str(members).lower()})
        return [self._seen(PoolSnapshot.from_dict(d)) for d in data["pools"]]

    async def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        """One pool now; PoolNotFound for an unknown name."""
        data = await self._call("GET", f"/pools/{_q(pool)}", params={"members": str(members).lower()})
        return self._seen(PoolSnapshot.from_dict(data))

    async def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        """The last `limit` (1 to 1000) events the server keeps, oldest first."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if pool is not None:
            params["pool"] = pool
        data = await self._call("GET", "/events/recent", params=params)
        return [Event.from_dict(d) for d in data["events"]]

    def events(self, pool: str | None = None, size: int = 1000) -> RemoteEvents:
        """State changes from the first iteration on (the server bounds its buffer per client)."""
        return RemoteEvents(self, pool)

    # ------------------------------------------------------------------ claims

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None, lease: float | None = None, env: dict[str, str] | None = None,
                    files: dict[str, bytes | str] | None = None) -> Claim:
        """As PoolManager.claim. Every claim carries a claim key (a random one when none is given), so a
        call that fails after the request may have reached the server (cancelled, timed out, connection
        lost) gives the claim back by that key in the background: a claim this client could not receive
        never stays claimed. An HTTP-side timeout raises ClaimTimeout."""
        key = claim_key or uuid.uuid4().hex
        body: dict[str, Any] = {"check_health": check_health, "claim_key": key}
        if timeout is not None:
            body["timeout"] = timeout
        if lease is not None:
            body["lease"] = lease
        if env is not None:
            body["env"] = env
        body.update(files_fields(files))
        wait = timeout if timeout is not None else self._claim_timeouts.get(pool, DEFAULT_CLAIM_WAIT)
        try:
            data = await self._call("POST", f"/pools/{_q(pool)}/claim", body, timeout=wait + self.timeout)
        except ServerUnreachable as e:
            self.rollbacks.give_back(pool, key)
            if "did not answer in time" in str(e):
                raise ClaimTimeout(f"pool '{pool}': no answer from {self.url} within {wait + self.timeout:g}s; "
                                   "the claim, if one was made, is being given back") from None
            raise
        except asyncio.CancelledError:
            self.rollbacks.give_back(pool, key)
            raise
        return Claim.from_dict(data)

    async def renew(self, pool: str, sandbox_id: str, lease: float | None = None) -> Lease:
        """As PoolManager.renew."""
        body = {"lease": lease} if lease is not None else {}
        return Lease.from_dict(await self._call("POST", f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/renew", body))

    async def release_claim(self, pool: str, claim_key: str) -> bool:
        """As PoolManager.release_claim: idempotent, and a key the server has not seen yet is refused when its
        claim arrives later (how this client gives back a claim it gave up on while it was on the wire)."""
        data = await self._call("POST", f"/pools/{_q(pool)}/claims/{_q(claim_key)}/release")
        return bool(data["released"])

    def claimed(self, pool: str, timeout: float | None = None, check_health: bool = False,
                claim_key: str | None = None, lease: float | None = None) -> AbstractAsyncContextManager[Claim]:
        """As PoolManager.claimed: the lease renewed while the block runs, released at the end."""
        return claimed(self, pool, timeout, check_health, claim_key, lease)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        """As PoolManager.release."""
        data = await self._call("POST", f"/pools/{_q(pool)}/sandboxes/{_q(sandbox_id)}/release")
        return bool(data["released"])

    # ------------------------------------------------------------------ operations

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        """As PoolManager.terminate."""
        data = await self._call("POST", f"/pools/{_q(pool)}/terminate", {"ids": list(ids)})
        return list(data["terminated"])

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        """As PoolManager.resize (persist writes the server's pool file)."""
        body: dict[str, Any] = {"persist": persist}
        for key, value in (("target", target), ("min_ready", min_ready), ("max_ready", max_ready)):
            if value is not None:
                body[key] = value
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_q(pool)}/resize", body))

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        """As PoolManager.drain; with wait, the HTTP deadline is `timeout` (default an hour) plus the
        client's own."""
        body: dict[str, Any] = {"wait": wait}
        if timeout is not None:
            body["timeout"] = timeout
        http_timeout = (timeout if timeout is not None else 3600.0) + self.timeout if wait else None
        data = await self._call("POST", f"/pools/{_q(pool)}/drain", body, timeout=http_timeout)
        return PoolSnapshot.from_dict(data)

    async def pause(self, pool: str) -> PoolSnapshot:
        """As PoolManager.pause."""
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_q(pool)}/pause"))

    async def resume(self, pool: str) -> PoolSnapshot:
        """As PoolManager.resume."""
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_q(pool)}/resume"))

    async def maintain(self, pool: str) -> MaintenanceReport:
        """As PoolManager.maintain (at least a minute: probing every ready sandbox takes a while)."""
        return MaintenanceReport.from_dict(await self._call("POST", f"/pools/{_q(pool)}/maintain",
                                                            timeout=max(self.timeout, 60.0)))
