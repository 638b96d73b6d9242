"""The remote control: an httpx client with the same async methods as PoolManager, raising the same errors.

Every call has a timeout. A claim waits on the server for up to its own `timeout` (or the pool's
claim_timeout), so its HTTP deadline is that wait plus the client's ordinary timeout.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from .client_sync import error_from
from .core.model import Claim, Event, MaintenanceReport, PoolSnapshot
from .errors import ClaimTimeout, PoolError, ServerUnreachable

DEFAULT_CLAIM_WAIT = 120.0  # when neither the call nor a snapshot told us the pool's claim_timeout
EVENTS_READ_TIMEOUT = 60.0  # the server sends a keep-alive every 15 s; four missed ones mean it is gone


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part, safe="")


class PoolClient:
    embedded = False

    def __init__(self, url: str, token: str | None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 100) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"authorization": f"Bearer {token}"} if token else {}
        # Loading the CA bundle costs ~40 ms (a fifth of `check`'s budget); plain http has nothing to verify.
        # httpx keeps 20 idle connections by default; many concurrent claimers then reconnect on every call.
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                       trust_env=False, verify=self.url.startswith("https://"), limits=limits)
        self._claim_timeouts: dict[str, float] = {}

    async def __aenter__(self) -> PoolClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # The manager's lifecycle verbs, so code can treat both the same; the server owns the real lifecycle.
    async def start(self) -> None:
        await self.ping()

    async def stop(self, keep: bool = False) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ transport

    def _unreachable(self, e: Exception) -> ServerUnreachable:
        if isinstance(e, httpx.TimeoutException):
            return ServerUnreachable(f"poolui server at {self.url} did not answer in time ({type(e).__name__})")
        return ServerUnreachable(f"no poolui server at {self.url}: {e or type(e).__name__}")

    @staticmethod
    def _error(r: httpx.Response) -> PoolError:
        return error_from(r.status_code, r.content)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
                    params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        try:
            r = await self._http.request(method, path, json=body, params=params,
                                         timeout=self.timeout if timeout is None else timeout)
        except httpx.TimeoutException as e:
            raise self._unreachable(e) from None
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if r.status_code >= 400:
            raise self._error(r)
        try:
            return r.json()
        except ValueError:
            raise PoolError(f"the server at {self.url} answered {path} with something that is not JSON") from None

    def _seen(self, snap: PoolSnapshot) -> PoolSnapshot:
        timeout = snap.config.get("claim_timeout") if snap.config else None
        if isinstance(timeout, int | float):
            self._claim_timeouts[snap.name] = float(timeout)
        return snap

    # ------------------------------------------------------------------ reading

    async def ping(self) -> None:
        """Raises ServerUnreachable or Unauthorized unless the server answers and accepts the token."""
        await self._call("GET", "/pools")

    async def list_pools(self, members: bool = False) -> list[PoolSnapshot]:
        data = await self._call("GET", "/pools", params={"members": str(members).lower()})
        return [self._seen(PoolSnapshot.from_dict(d)) for d in data["pools"]]

    async def get(self, pool: str, members: bool = True) -> PoolSnapshot:
        data = await self._call("GET", f"/pools/{_quote(pool)}", params={"members": str(members).lower()})
        return self._seen(PoolSnapshot.from_dict(data))

    async def snapshot(self, pool: str, members: bool = True) -> PoolSnapshot:
        """Awaitable here (PoolManager.snapshot is synchronous; its get() is the awaitable twin)."""
        return await self.get(pool, members)

    async def names(self) -> list[str]:
        return [s.name for s in await self.list_pools()]

    async def recent_events(self, pool: str | None = None, limit: int = 200) -> list[Event]:
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if pool is not None:
            params["pool"] = pool
        data = await self._call("GET", "/events/recent", params=params)
        return [Event.from_dict(d) for d in data["events"]]

    async def metrics_text(self) -> str:
        try:
            r = await self._http.get("/metrics")
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if r.status_code >= 400:
            raise self._error(r)
        return r.text

    # ------------------------------------------------------------------ claims

    async def claim(self, pool: str, timeout: float | None = None, check_health: bool = False,
                    claim_key: str | None = None) -> Claim:
        body: dict[str, Any] = {"check_health": check_health}
        if timeout is not None:
            body["timeout"] = timeout
        if claim_key is not None:
            body["claim_key"] = claim_key
        wait = timeout if timeout is not None else self._claim_timeouts.get(pool, DEFAULT_CLAIM_WAIT)
        try:
            data = await self._call("POST", f"/pools/{_quote(pool)}/claim", body, timeout=wait + self.timeout)
        except ServerUnreachable as e:
            if "did not answer in time" in str(e):
                raise ClaimTimeout(f"pool '{pool}': no answer from {self.url} within {wait + self.timeout:g}s; "
                                   f"retry with the same claim_key to get the claim if one was made") from None
            raise
        return Claim.from_dict(data)

    async def release(self, pool: str, sandbox_id: str) -> bool:
        data = await self._call("POST", f"/pools/{_quote(pool)}/sandboxes/{_quote(sandbox_id)}/release")
        return bool(data["released"])

    # ------------------------------------------------------------------ operations

    async def terminate(self, pool: str, ids: list[str]) -> list[str]:
        data = await self._call("POST", f"/pools/{_quote(pool)}/terminate", {"ids": list(ids)})
        return list(data["terminated"])

    async def resize(self, pool: str, target: int | None = None, min_ready: int | None = None,
                     max_ready: int | None = None, persist: bool = False) -> PoolSnapshot:
        body: dict[str, Any] = {"persist": persist}
        for key, value in (("target", target), ("min_ready", min_ready), ("max_ready", max_ready)):
            if value is not None:
                body[key] = value
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_quote(pool)}/resize", body))

    async def drain(self, pool: str, wait: bool = False, timeout: float | None = None) -> PoolSnapshot:
        body: dict[str, Any] = {"wait": wait}
        if timeout is not None:
            body["timeout"] = timeout
        http_timeout = (timeout if timeout is not None else 3600.0) + self.timeout if wait else None
        data = await self._call("POST", f"/pools/{_quote(pool)}/drain", body, timeout=http_timeout)
        return PoolSnapshot.from_dict(data)

    async def pause(self, pool: str) -> PoolSnapshot:
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_quote(pool)}/pause"))

    async def resume(self, pool: str) -> PoolSnapshot:
        return PoolSnapshot.from_dict(await self._call("POST", f"/pools/{_quote(pool)}/resume"))

    async def maintain(self, pool: str) -> MaintenanceReport:
        return MaintenanceReport.from_dict(await self._call("POST", f"/pools/{_quote(pool)}/maintain",
                                                            timeout=max(self.timeout, 60.0)))

    # ------------------------------------------------------------------ events

    async def events(self, pool: str | None = None, size: int = 1000) -> AsyncIterator[Event]:
        """Every state change from now on. When the server drops this client for falling behind, it
        reconnects with Last-Event-ID and goes on from the server's recent-events buffer; raises
        ServerUnreachable when the server is gone."""
        last: int | None = None
        params = {"pool": pool} if pool is not None else None
        while True:
            headers = {"last-event-id": str(last)} if last is not None else {}
            timeout = httpx.Timeout(self.timeout, read=EVENTS_READ_TIMEOUT)
            try:
                async with self._http.stream("GET", "/events", params=params, headers=headers,
                                             timeout=timeout) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        raise self._error(r)
                    kind, data = "", ""
                    async for line in r.aiter_lines():
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        elif line == "" and data:
                            if kind != "dropped":
                                event = Event.from_dict(json.loads(data))
                                last = event.seq
                                yield event
                            kind, data = "", ""
            except (httpx.TransportError, httpx.TimeoutException) as e:
                raise self._unreachable(e) from None
            if last is None:
                raise ServerUnreachable(f"the events stream of {self.url} ended before any event")
