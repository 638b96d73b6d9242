"""DockerProvider: the provider protocol over the Docker SDK (imported on first use, not at import time).

The SDK blocks, so every engine call runs on this provider's own small thread pool (a stuck call cannot
starve the event loop's default executor).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ...config import PoolConfig, ProbeConfig
from ...errors import ProviderError, ProviderUnavailable, SandboxDied
from .. import probes
from ..base import ProbeResult, ProviderContext, Sandbox
from ..common import NAMESPACE, POOL, Ended
from . import agent, forward, network
from .errors import is_engine_gone, translate
from .events import EventWatcher
from .options import DockerOptions
from .probing import container_state, exec_blocking, tcp_through_proxy
from .spec import ContainerSpec, container_name, container_spec, published, sandbox_of
from .use import DockerUse

T = TypeVar("T")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def _min(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class DockerProvider(DockerUse):
    kind = "docker"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext, opts: DockerOptions) -> None:
        self.pool, self.ctx, self.opts = pool, ctx, opts
        self.memory = _min(opts.memory, pool.limits.memory)
        self.pids = _min(opts.pids, pool.limits.pids)
        # A reuse pool's root is read-only unless its file says otherwise: a reset empties the container's
        # tmpfs places, and a writable root would carry what one claim wrote there to the next.
        self.read_only = pool.read_only or (opts.read_only if opts.read_only is not None else pool.reuse is not None)
        self.command = opts.command or pool.command
        self.engine = opts.host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        self.mode = network.resolve(pool, opts, self.engine)  # isolated | egress | a Docker network's name
        self._egress: str | None = None  # the egress network, once made and firewalled
        self._filters = {"label": [f"{NAMESPACE}={ctx.namespace}", f"{POOL}={pool.name}"]}
        self._executor = ThreadPoolExecutor(max(4, pool.max_concurrent_creates + 2), f"poolui-docker-{pool.name}")
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()  # guards _known and _creating, shared with the watcher thread
        self._known: dict[str, str] = {}  # container id -> member id, believed alive
        self._creating: set[str] = set()
        self._dead = Ended(10_000)  # container id -> how it died (loop thread only)
        self._terminating: set[str] = set()
        self._agent = agent.Plan(opts.agent, opts.user, self.engine, ctx.state_dir, pool.name, ctx.namespace)
        self._events = EventWatcher(pool.name, self._docker, self._filters, self._believed_alive, self._mark_dead)
        self.watch_connected = self._events.connected  # set while the event stream is open

    @property
    def isolation(self) -> str:
        return "container" + (" (host network)" if self.mode == "host" else "")

    @property
    def shield(self) -> dict[str, object]:
        """What protects this pool's containers: which network, who runs, seccomp, the disk's cap."""
        return self._agent.shield(network.describe(self.mode, self.opts, self.read_only, self.pool.seccomp))

    # ------------------------------------------------------------------ engine access

    def _docker(self) -> Any:
        """The SDK client, made on first use (making it asks the engine for its API version)."""
        with self._client_lock:
            if self._client is None:
                import docker

                self._client = docker.DockerClient(base_url=self.engine, timeout=self.opts.api_timeout)
            return self._client

    def _drop_client(self) -> None:
        """After the engine went away: its pooled connections are dead; the next call makes a fresh client."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def _error(self, e: BaseException, doing: str) -> ProviderError:
        if is_engine_gone(e):
            self._drop_client()  # its pooled connections are dead; the next call makes a fresh client
        return translate(e, f"pool '{self.pool.name}'", self.opts.image, self.engine, self.opts.ttl_command[0],
                         doing)

    async def _call(self, doing: str, fn: Callable[..., T], *args: Any) -> T:
        self._events.start()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except Exception as e:
            raise self._error(e, doing) from e

    # ------------------------------------------------------------------ provider protocol

    async def check(self) -> None:
        try:
            await self._call("checking the engine", self._check_blocking)
        except ProviderError as e:
            raise ProviderUnavailable(e.message, reason=e.reason, transient=e.transient) from e.__cause__

    def _check_blocking(self) -> None:
        client = self._docker()
        client.ping()
        image = client.images.get(self.opts.image)
        self._network_blocking()
        self._agent.check(client, image.id)

    def _network_blocking(self) -> str:
        """The Docker network a new container goes on (the egress one made and firewalled on first use)."""
        if self.mode == "isolated":
            return "none"
        if self.mode != "egress":
            return self.mode
        if self._egress is None:  # two threads may both make sure: ensure_egress is idempotent
            self._egress = network.ensure_egress(self._docker(), self.ctx.namespace)
        return self._egress

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        loop = asyncio.get_running_loop()
        self._events.start()
        fut = loop.run_in_executor(self._executor, self._create_blocking, member_id, ttl)
        try:
            sb = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The thread goes on; whatever it starts is removed once it is done, not left running.
            fut.add_done_callback(self._remove_late)
            raise
        except Exception as e:
            raise self._error(e, f"creating {member_id}") from e
        cid = sb.ref["container_id"]
        if cid not in self._dead:  # it may have died (and been reported) before we got here
            with self._lock:
                self._known[cid] = member_id
        return sb

    def _remove_late(self, fut: asyncio.Future[Sandbox]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        cid = fut.result().ref["container_id"]
        try:
            self._executor.submit(self._remove_quietly, cid)
        except RuntimeError:  # closed meanwhile; the removal must still happen
            threading.Thread(target=self._remove_quietly, args=(cid,), daemon=True).start()

    def _remove_quietly(self, cid: str) -> None:
        try:
            self._remove_blocking(cid)
        except Exception:
            pass  # labelled: the next list_ours() finds it

    def _create_blocking(self, member_id: str, ttl: float) -> Sandbox:
        import docker.errors

        try:
            return self._create_once(member_id, ttl)
        except docker.errors.APIError as e:
            # The engine picks host ports without knowing about non-Docker listeners; a second pick is free.
            if self.opts.host_port is None and "address already in use" in str(e.explanation):
                return self._create_once(member_id, ttl)
            raise

    def _create_once(self, member_id: str, ttl: float) -> Sandbox:
        client = self._docker()
        o = self.opts
        image = client.images.get(o.image)
        expires_at = time.time() + max(1, math.ceil(ttl))
        host_port, channel = o.host_port, None
        if self.mode == "host":
            host_port = host_port or self.ctx.ports.pick()
        elif self.mode == "isolated":  # the URL's port is bound, and its forwarder started, before the container
            listener = forward.listen(host_port or self.ctx.ports.pick())
            host_port = listener.getsockname()[1]
            channel = forward.prestart(listener)
        try:
            c = container_spec(self.pool, o, self.ctx.namespace, member_id, ttl, expires_at, host_port,
                               image.attrs.get("Config") or {}, self.memory, self.pids, self.read_only,
                               self.mode, self._network_blocking())
            with self._agent.making(client, image.id, c.name) as sock_dir:
                if sock_dir is not None:
                    agent.apply(c.create, c.host_config, len(o.ttl_command), agent.build_zip(self.ctx.state_dir),
                                sock_dir, o.user, o.workdir)
                return self._create_started(c, image.id, channel)
        finally:
            if channel is not None:
                channel.close()  # a no-op once handed over; else the forwarder ends

    def _create_started(self, c: ContainerSpec, image_id: str, channel: socket.socket | None) -> Sandbox:
        """Create and start the container (and an isolated one's forwarder); nothing is left on failure."""
        import docker.errors

        api = self._docker().api
        spec = {**c.create, "image": image_id, "host_config": api.create_host_config(**c.host_config)}
        labels = c.labels
        try:
            cid = api.create_container(**spec)["Id"]
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
            # Same name: a container of an earlier attempt for this member id; it is stale by definition.
            self._remove_blocking(spec["name"])
            cid = api.create_container(**spec)["Id"]
        with self._lock:
            self._creating.add(cid)
        try:
            api.start(cid)
            attrs = api.inspect_container(cid)
            if channel is not None:
                forward.hand_over(channel, attrs["State"]["Pid"], self.opts.port or 0)
        except BaseException:
            self._remove_blocking(cid)
            raise
        finally:
            with self._lock:
                self._creating.discard(cid)
        return sandbox_of(cid, attrs.get("Name", ""), labels, published(attrs, self.opts.port), self.opts.image)

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        cfg = self.pool.readiness
        deadline = time.monotonic() + timeout
        last_inspect = time.monotonic()

        async def probe() -> ProbeResult:
            nonlocal last_inspect
            left = max(0.05, deadline - time.monotonic())
            result = await self._probe(sb, cfg, min(left, 2.0))
            # Events can be missed (engine restarting): look at the container itself now and then.
            if not result.ok and time.monotonic() - last_inspect > 0.5:
                last_inspect = time.monotonic()
                await self._refresh_state(sb)
            return result

        what = f"container {sb.ref.get('name', sb.member_id)}"
        try:
            await probes.poll_until_ready(probe, lambda: self.alive(sb), timeout, cfg.interval, what)
        except SandboxDied as e:
            how = self._dead.get(sb.ref.get("container_id", ""), "")
            if how.startswith("exited with code 127"):
                how += (f" (not found in the image: the command, or `{self.opts.ttl_command[0]}` that enforces "
                        "the TTL; see docker.command and docker.ttl_command)")
            raise SandboxDied(f"{e.message}; {how}" if how else e.message) from None

    async def health(self, sb: Sandbox) -> ProbeResult:
        cfg = self.pool.health or self.pool.readiness
        cid = sb.ref.get("container_id", "")
        if cid in self._dead:
            return ProbeResult(False, f"container gone: {self._dead[cid]}")
        start = time.monotonic()
        try:
            async with asyncio.timeout(cfg.timeout):
                result = await self._probe(sb, cfg, cfg.timeout)
                if not result.ok:
                    await self._refresh_state(sb)
        except TimeoutError:
            result = ProbeResult(False, f"no answer in {cfg.timeout:g}s", time.monotonic() - start)
        if cid in self._dead:
            return ProbeResult(False, f"{result.detail}; container gone: {self._dead[cid]}", result.latency)
        return result

    def alive(self, sb: Sandbox) -> bool:
        return sb.ref.get("container_id", "") not in self._dead

    async def terminate(self, sb: Sandbox) -> None:
        cid = sb.ref.get("container_id") or sb.ref.get("name")
        if not cid:
            return
        self._terminating.add(cid)
        try:
            await self._call(f"removing {sb.member_id}", self._remove_blocking, cid)
            # Marked dead before leaving _terminating, so a late "die" event is not reported as on_exit.
            self._dead.setdefault(cid, "terminated")
        finally:
            self._terminating.discard(cid)
        if sb.ref.get("agent"):
            self._agent.gone(sb.ref.get("name", ""))
        with self._lock:
            self._known.pop(cid, None)

    def _remove_blocking(self, cid: str) -> None:
        import docker.errors

        try:
            self._docker().api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            # auto-remove may be deleting it at the same moment: that is the outcome we want
            if e.status_code != 409 or "in progress" not in str(e.explanation):
                raise

    async def list_ours(self) -> list[Sandbox]:
        found = await self._call("listing containers", self._list_blocking)
        # The engine's list can still say "running" just after its "die" event (its listing view is
        # updated after the event is sent): a container seen dying is not listed as live again.
        found = [sb for sb in found if sb.ref["container_id"] not in self._dead]
        self._agent.sweep({sb.ref["name"] for sb in found})
        with self._lock:
            for sb in found:
                self._known[sb.ref["container_id"]] = sb.member_id
        return found

    def _list_blocking(self) -> list[Sandbox]:
        out = []
        for c in self._docker().api.containers(all=True, filters=self._filters):
            with self._lock:
                in_creation = c["Id"] in self._creating
            if c.get("State") != "running":
                # never started (a create interrupted before start) or dead awaiting auto-remove: garbage
                if not in_creation:
                    self._remove_blocking(c["Id"])
                continue
            port = next((p.get("PublicPort") for p in c.get("Ports") or []
                              if p.get("PrivatePort") == self.opts.port and p.get("PublicPort")), None)
            out.append(sandbox_of(c["Id"], (c.get("Names") or [""])[0], c.get("Labels") or {}, port, self.opts.image))
        return out

    async def close(self) -> None:
        self._events.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    # ------------------------------------------------------------------ probes

    async def _probe(self, sb: Sandbox, cfg: ProbeConfig, timeout: float) -> ProbeResult:
        if cfg.kind == "exec":
            return await self._exec(sb, list(cfg.argv), timeout)
        if not sb.url:
            return ProbeResult(False, "no published port to probe")
        if cfg.kind == "http":
            return await probes.http_get(sb.url, cfg.path, timeout)
        port = int(sb.url.rsplit(":", 1)[1])
        if self.mode == "host":
            return await probes.tcp_connect("127.0.0.1", port, timeout)
        return await tcp_through_proxy(port, timeout)

    async def _exec(self, sb: Sandbox, argv: list[str], timeout: float) -> ProbeResult:
        start = time.monotonic()
        # The in-container deadline reaps a hung probe; the thread waiting on it then returns too.
        prefix = [a.replace("{ttl}", str(max(1, math.ceil(timeout)))) for a in self.opts.ttl_command]
        try:
            async with asyncio.timeout(timeout + 1.0):
                rc, last = await self._call("running an exec probe", lambda: exec_blocking(
                    self._docker().api, sb.ref.get("container_id", ""), prefix + argv, self._user(sb)))
        except TimeoutError:
            return ProbeResult(False, f"exec {argv[0]}: still running after {timeout:g}s", time.monotonic() - start)
        except ProviderError as e:
            return ProbeResult(False, f"exec {argv[0]}: {e.message}", time.monotonic() - start)
        detail = f"exec {argv[0]}: exit {rc}" + (" (killed: out of memory or timeout)" if rc == 137 else "")
        if rc != 0 and last:
            detail += f": {last}"
        return ProbeResult(rc == 0, detail, time.monotonic() - start)

    async def _refresh_state(self, sb: Sandbox) -> None:
        """Mark the sandbox dead when the engine says it is not running (never raises)."""
        cid = sb.ref.get("container_id", "")
        try:
            state = await self._call("inspecting a container", lambda: container_state(self._docker().api, cid))
        except ProviderError:
            return
        if state is not None:
            self._mark_dead(cid, sb.member_id, state)

    # ------------------------------------------------------------------ deaths

    def _mark_dead(self, cid: str, member_id: str | None, how: str) -> None:
        """On the loop thread: remember the death and tell the engine, unless we did the killing."""
        if cid in self._dead:
            return
        self._dead.note(cid, how)
        with self._lock:
            self._known.pop(cid, None)
        if member_id:
            self._agent.gone(container_name(self.ctx.namespace, self.pool.name, member_id))
        if member_id and cid not in self._terminating:
            self.ctx.on_exit(member_id, how)

    def _believed_alive(self) -> dict[str, str]:
        """For the watcher thread: container id -> member id of the containers believed alive."""
        with self._lock:
            return dict(self._known)
