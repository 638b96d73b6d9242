"""ModalProvider: the provider protocol over the modal SDK (see session.py for how calls are bounded).

Deaths are learned by a watcher that lists the pool's live sandboxes every `watch_interval` (one call for
the whole pool) and confirms each one missing from the list with a poll before calling it dead; health
checks and readiness waits report what they see on the way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from ...config import PoolConfig
from ...errors import ProviderError, ProviderUnavailable, ReadinessTimeout, SandboxDied
from .. import probes
from ..base import ProbeResult, ProviderContext, Sandbox
from ..common import Ended, fill
from .errors import is_connection_trouble, is_not_found, sdk, translate
from .options import MAX_TIMEOUT, ModalOptions
from .session import ModalApi, Session
from .tags import TAG_EXPIRES, TAG_MEMBER, TAG_NS, TAG_POOL, TAG_REVISION, decode_member, encode_member, tag_value
from .use import ModalUse

log = logging.getLogger("poolui.providers.modal")


class ModalProvider(ModalUse):
    kind = "modal"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext, opts: ModalOptions, limit_mib: int | None) -> None:
        self.pool = pool
        self.ctx = ctx
        self.opts = opts
        self.api = ModalApi(opts, f"pool '{pool.name}'")
        self._limit_mib = limit_mib
        self._command = tuple(fill(opts.command or pool.command, port=opts.port))
        self._base_tags = {TAG_POOL: tag_value(pool.name), TAG_NS: tag_value(ctx.namespace)}
        self._tracked: dict[str, str] = {}  # sandbox id -> member id, for the watcher
        self._dead = Ended()  # sandbox id -> how it ended
        self._watcher: asyncio.Task[None] | None = None
        self._http: Any = None

    @property
    def isolation(self) -> str:
        return "modal"

    def _what(self, sb: Sandbox | None = None, action: str = "") -> str:
        who = self.api.who
        if sb is not None:
            who += f": sandbox {sb.ref.get('sandbox_id', '?')} ({sb.member_id})"
        return f"{who}: {action}" if action else who

    async def _handle(self, sb: Sandbox) -> tuple[Session, Any]:
        sid = sb.ref.get("sandbox_id")
        if not sid:
            raise ProviderError(f"{self._what(sb)}: no Modal sandbox id in its ref")
        s, h = await self.api.handle(sid, self._what(sb))
        if sid not in self._dead:
            self._tracked.setdefault(sid, sb.member_id)
        return s, h

    # ---------------------------------------------------------------- starting

    async def check(self) -> None:
        sdk()
        self.api.credentials()
        try:
            await self.api.connect()
        except ProviderUnavailable:
            raise
        except ProviderError as e:
            raise ProviderUnavailable(str(e), reason="unreachable", transient=True) from e

    def _probe(self) -> Any:
        modal = sdk()
        r = self.pool.readiness
        interval_ms = max(50, int(r.interval * 1000))
        if r.kind == "exec":
            return modal.Probe.with_exec(*r.argv, interval_ms=interval_ms)
        # An http readiness check becomes a TCP probe inside Modal, then a real GET through the tunnel.
        return modal.Probe.with_tcp(self.opts.port, interval_ms=interval_ms)

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        self._ensure_watcher()
        modal = sdk()
        s = await self.api.connect()
        image = await self.api.image(s)
        o = self.opts
        seconds = max(1, min(int(ttl), int(MAX_TIMEOUT)))
        # Taken before the call: Modal counts `timeout` from the container's start, so the real end is later.
        expires_at = time.time() + seconds
        tags = {
            **self._base_tags, TAG_MEMBER: encode_member(member_id),
            TAG_EXPIRES: str(int(expires_at)), TAG_REVISION: self.pool.revision,
        }
        kwargs: dict[str, Any] = {
            "app": s.app, "client": s.client, "image": image, "tags": tags, "timeout": seconds,
            "encrypted_ports": [o.port], "readiness_probe": self._probe(), "secrets": s.secrets,
        }
        if o.idle_timeout is not None:
            kwargs["idle_timeout"] = max(1, int(o.idle_timeout))
        if o.cpu is not None:
            kwargs["cpu"] = o.cpu
        if self._limit_mib:
            kwargs["memory"] = (o.memory or self._limit_mib, self._limit_mib)
        elif o.memory:
            kwargs["memory"] = o.memory
        if o.env:
            kwargs["env"] = dict(o.env)
        if o.region:
            kwargs["region"] = o.region[0] if len(o.region) == 1 else list(o.region)
        h = await self.api.call(f"{self._what()}: create a sandbox for {member_id}",
                                lambda: modal.Sandbox.create.aio(*self._command, **kwargs), session=s)
        sid = str(h.object_id)
        self.api.keep(s, sid, h)
        self._tracked[sid] = member_id
        ref = {"sandbox_id": sid, "app_id": s.app.app_id, "app": o.app, "port": o.port, "revision": self.pool.revision}
        # The URL comes with readiness: Modal may publish the tunnel only once the container is scheduled.
        return Sandbox(member_id, "", ref, expires_at)

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def left() -> float:
            return deadline - time.monotonic()

        try:
            s, h = await self._handle(sb)
        except ProviderError as e:
            if is_not_found(e.__cause__ or e):
                self._mark_dead(sb.ref.get("sandbox_id", ""), "not found on Modal", notify=False)
                raise SandboxDied(f"{self._what(sb)}: gone from Modal before it was ready") from e
            raise
        if not sb.url:
            sb.url = await self._tunnel_url(sb, s, h, left())
        await self._modal_ready(sb, s, h, left(), timeout)
        r = self.pool.readiness
        if r.kind == "http":
            await probes.poll_until_ready(
                lambda: self._http_get(sb.url, r.path, max(0.05, min(self.opts.api_timeout, left()))),
                lambda: self.alive(sb), max(0.0, left()), r.interval, self._what(sb, f"GET {r.path}"),
            )

    async def _tunnel_url(self, sb: Sandbox, s: Session, h: Any, budget: float) -> str:
        what = self._what(sb, f"tunnel for port {self.opts.port}")
        if budget <= 0:
            raise ReadinessTimeout(f"{what}: no time left to wait for it")
        try:
            tunnels = await self.api.call(what, lambda: h.tunnels.aio(timeout=max(1, math.ceil(budget))),
                                          timeout=budget, session=s)
        except SandboxDied as e:  # the SDK's SandboxTimeoutError: here the tunnel wait ran out, not the sandbox
            raise ReadinessTimeout(f"{what}: Modal did not publish it in time") from e
        tunnel = tunnels.get(self.opts.port)
        if tunnel is None:
            raise ProviderError(f"{what}: Modal published no tunnel for it (ports: {sorted(tunnels)})")
        return str(tunnel.url)

    async def _modal_ready(self, sb: Sandbox, s: Session, h: Any, budget: float, timeout: float) -> None:
        """Modal's own readiness probe, raced against the sandbox exiting so a crash fails fast."""
        what = self._what(sb)
        if budget <= 0:
            raise ReadinessTimeout(f"{what}: not ready after {timeout:g}s")
        ready = asyncio.ensure_future(h.wait_until_ready.aio(timeout=max(1, math.ceil(budget))))
        exited = asyncio.ensure_future(h.wait.aio(raise_on_termination=False))
        pending: set[asyncio.Future[Any]] = {ready, exited}
        try:
            end = time.monotonic() + budget
            while pending:
                done, pending = await asyncio.wait(pending, timeout=max(0.0, end - time.monotonic()),
                                                   return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    break
                if exited in done and (how := _ended(h, exited)):
                    self._mark_dead(sb.ref["sandbox_id"], how, notify=False)
                    raise SandboxDied(f"{what}: {how} before it was ready")
                if ready in done:
                    cut = ProviderError(f"{what}: the readiness wait was cut short")
                    e = cut if ready.cancelled() else ready.exception()
                    if e is None:
                        return
                    ended = await self._poll(sb, self.opts.api_timeout, notify=False, quiet=True)
                    if ended:
                        raise SandboxDied(f"{what}: {ended} before it was ready") from e
                    if is_connection_trouble(e):
                        self.api.drop(s)
                    raise translate(e, f"{what}: waiting for readiness", readiness=True) from e
            raise ReadinessTimeout(f"{what}: not ready after {timeout:g}s")
        finally:
            # Abandoned, not awaited: a cancelled SDK wait must not hold up the engine.
            for f in (ready, exited):
                self.api.abandon(f)

    # ---------------------------------------------------------------- watching

    async def health(self, sb: Sandbox) -> ProbeResult:
        hc = self.pool.health
        timeout = hc.timeout if hc is not None else self.opts.api_timeout
        start = time.monotonic()
        try:
            if hc is not None and hc.kind == "http" and sb.url:
                result = await self._http_get(sb.url, hc.path, timeout)
                left = timeout - (time.monotonic() - start)
                if not result.ok and left > 0.05:
                    # Say whether the sandbox itself is gone, not only that its port is silent.
                    how = await self._poll(sb, left, quiet=True)
                    if how:
                        result.detail += f"; {how}"
                return result
            how = await self._poll(sb, timeout)
            return ProbeResult(how is None, how or "running", time.monotonic() - start)
        except Exception as e:
            return ProbeResult(False, str(e), time.monotonic() - start)

    async def _poll(self, sb: Sandbox, timeout: float, notify: bool = True, quiet: bool = False) -> str | None:
        """None while running, else how it ended (it is then known dead). quiet: None also when unsure."""
        sid = sb.ref.get("sandbox_id", "")
        if sid in self._dead:
            return self._dead[sid]
        try:
            s, h = await self._handle(sb)
            rc = await self.api.call(self._what(sb, "poll"), h.poll.aio, timeout=timeout, session=s)
        except ProviderError as e:
            if is_not_found(e.__cause__ or e):
                self._mark_dead(sid, "not found on Modal", notify)
                return "not found on Modal"
            if quiet:
                return None
            raise
        if rc is None:
            return None
        self._mark_dead(sid, _exit_text(rc), notify)
        return _exit_text(rc)

    def alive(self, sb: Sandbox) -> bool:
        if sb.ref.get("sandbox_id", "") in self._dead:
            return False
        return not (sb.expires_at and time.time() >= sb.expires_at)

    def _mark_dead(self, sid: str, how: str, notify: bool = True) -> None:
        if not sid:
            return
        self._dead.note(sid, how)
        member = self._tracked.pop(sid, None)
        self.api.forget(sid)
        if notify and member is not None:
            self.ctx.on_exit(member, how)

    def _ensure_watcher(self) -> None:
        if not self.api.closed and (self._watcher is None or self._watcher.done()):
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name=f"modal-watch-{self.pool.name}")

    async def _watch(self) -> None:
        while not self.api.closed:
            await asyncio.sleep(self.opts.watch_interval)
            if not self._tracked:
                continue
            try:
                await self._sweep()
            except ProviderError as e:
                log.info("%s: watching for exits: %s", self._what(), e)

    async def _sweep(self) -> None:
        s = await self.api.connect()
        live = {str(h.object_id) for h in await self._list_live(s)}
        for sid, member in list(self._tracked.items()):
            if sid not in live and sid not in self._dead:
                # A listing can lag behind a create; only the sandbox's own answer says it is gone.
                await self._poll(Sandbox(member, ref={"sandbox_id": sid}), self.opts.api_timeout)

    # ---------------------------------------------------------------- ending and finding

    async def terminate(self, sb: Sandbox) -> None:
        sid = sb.ref.get("sandbox_id")
        if not sid or sid in self._dead:
            return  # nothing was created, or it is known to have ended: nothing left to kill
        try:
            s, h = await self._handle(sb)
            await self.api.call(self._what(sb, "terminate"), h.terminate.aio, session=s)
        except ProviderError as e:
            if not is_not_found(e.__cause__ or e):
                raise
        self._mark_dead(sid, "terminated by poolui", notify=False)

    async def list_ours(self) -> list[Sandbox]:
        self._ensure_watcher()
        s = await self.api.connect()
        found = await self._list_live(s)
        described = await asyncio.gather(*(self._describe(s, h) for h in found))
        return [sb for sb in described if sb is not None]

    async def _list_live(self, s: Session) -> list[Any]:
        modal = sdk()

        async def collect() -> list[Any]:
            it = modal.Sandbox.list.aio(app_id=s.app.app_id, tags=dict(self._base_tags), client=s.client)
            return [h async for h in it]

        return await self.api.call(f"{self._what()}: list sandboxes", collect, session=s)

    async def _describe(self, s: Session, h: Any) -> Sandbox | None:
        sid = str(h.object_id)
        try:
            tags = await self.api.call(f"{self._what()}: tags of {sid}", h.get_tags.aio, session=s)
        except ProviderError as e:
            # A partial list would make the engine forget live sandboxes; only one that ended meanwhile is skipped.
            if is_not_found(e.__cause__ or e):
                return None
            raise
        if not tags.get(TAG_MEMBER):
            return None
        member_id = decode_member(tags[TAG_MEMBER])
        url = ""
        try:
            tunnels = await self.api.call(f"{self._what()}: tunnel of {sid}", lambda: h.tunnels.aio(timeout=1),
                                          session=s)
            if self.opts.port in tunnels:
                url = str(tunnels[self.opts.port].url)
        except ProviderError as e:
            log.info("%s", e)  # still starting: the engine may kill it; adoption does not need the URL
        try:
            expires_at = float(tags.get(TAG_EXPIRES, "0"))
        except ValueError:
            expires_at = 0.0
        self.api.keep(s, sid, h)
        self._tracked[sid] = member_id
        ref = {"sandbox_id": sid, "app_id": s.app.app_id, "app": self.opts.app, "port": self.opts.port,
               "revision": tags.get(TAG_REVISION, "")}
        return Sandbox(member_id, url, ref, expires_at)

    async def close(self) -> None:
        self.api.closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait({self._watcher}, timeout=5)
        if self._http is not None:
            http, self._http = self._http, None
            self.api.spawn(http.aclose())
        await self.api.close()

    # ---------------------------------------------------------------- HTTP through the tunnel

    async def _http_get(self, url: str, path: str, timeout: float) -> ProbeResult:
        import httpx

        start = time.monotonic()
        if self._http is None:
            # Loading CA certificates takes a while: not on the loop. No keep-alive: an open tunnel
            # connection would count as activity and keep an idle_timeout from ever ending a sandbox.
            tls = await asyncio.to_thread(httpx.create_ssl_context)
            if self._http is None:
                self._http = httpx.AsyncClient(
                    verify=tls, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
                )
        try:
            async with asyncio.timeout(timeout):
                r = await self._http.get(url.rstrip("/") + path)
            code = r.status_code
            return ProbeResult(200 <= code < 300, f"HTTP {code}", time.monotonic() - start)
        except TimeoutError:
            return ProbeResult(False, f"HTTP GET {path}: no answer in {timeout:g}s", time.monotonic() - start)
        except httpx.HTTPError as e:
            return ProbeResult(False, f"HTTP GET {path}: {e or type(e).__name__}", time.monotonic() - start)


def _ended(h: Any, exited: asyncio.Future[Any]) -> str:
    """How the sandbox ended, from a finished wait(); "" when the wait itself failed (keep waiting)."""
    if exited.cancelled():
        return ""
    e = exited.exception()
    if e is None:
        return _exit_text(h.returncode)
    if isinstance(e, sdk().exception.SandboxTimeoutError):
        return _exit_text(124)
    return ""


def _exit_text(rc: int | None) -> str:
    if rc == 124:
        return "reached its Modal timeout (exit 124)"
    if rc == 137:
        return "was terminated (exit 137)"
    return f"exited with code {rc}"
