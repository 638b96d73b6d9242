"""FakeModal: the fake Modal API (and task command router) on 127.0.0.1, in a thread with its own loop.

The real `modal` SDK talks to it over gRPC exactly as it would to Modal (MODAL_SERVER_URL and the token
variables from `env()`). Tests steer it synchronously: what the next sandboxes do (`behaviour`), killing
one, making the whole API refuse or hang and come back, and reading what it holds (`sandboxes()`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from grpclib.server import Server
from modal_proto import api_pb2

from .api import Calls, FakeApi, FakeRouter
from .execs import Execs
from .front import Front
from .state import Behaviour, World, new_id
from .web import server_tls_context

T = TypeVar("T")
R = api_pb2.GenericResult


@dataclass(frozen=True)
class SandboxView:
    """A copy of one fake sandbox, safe to read from the test's thread."""

    sandbox_id: str
    app_id: str
    tags: dict[str, str]
    running: bool
    ready: bool
    returncode: int | None
    web_port: int
    definition: api_pb2.Sandbox
    image_commands: list[str]  # the Dockerfile lines of the image and all its base layers, base first
    env: dict[str, str]
    secret_ids: list[str]


class FakeModal:
    def __init__(self, cert: Path, key: Path, token: tuple[str, str] = ("ak-fake-id", "as-fake-secret")) -> None:
        self.token = token
        self.calls = Calls()
        self._tls = server_tls_context(cert, key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-modal", daemon=True)
        self._world: World | None = None
        self._servers: list[Server] = []
        self._fronts: list[Front] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeModal:
        self._thread.start()
        self._run(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._run(self._stop(), timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> FakeModal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._world = World(self._tls)
        backends = []
        self._execs = Execs(self._world)
        self._world.on_finish = self._execs.sandbox_ended
        router = Server([FakeRouter(self._world, self.calls, self._execs)])  # type: ignore[abstract]
        backends.append(router)
        router_front = Front(await _serve(router))
        await router_front.start()
        router_url = f"http://127.0.0.1:{router_front.port}"
        api = Server([FakeApi(self._world, self.calls, self.token, router_url)])  # type: ignore[abstract]
        backends.append(api)
        api_front = Front(await _serve(api))
        await api_front.start()
        self._servers = backends
        self._fronts = [api_front, router_front]

    async def _stop(self) -> None:
        w = self.world
        for front in self._fronts:
            await front.stop()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for sb in w.sandboxes.values():
            w.finish(sb, R.GENERIC_STATUS_TERMINATED, 137)
        if w.stopping:
            await asyncio.gather(*w.stopping)
        self._execs.close()
        if self._execs.tasks:  # a command that left its process group may hold a pipe open: not for long
            _, late = await asyncio.wait(self._execs.tasks, timeout=5)
            for t in late:
                t.cancel()
        await self._loop.shutdown_default_executor()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _do(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()

        return self._run(call())

    @property
    def world(self) -> World:
        assert self._world is not None, "FakeModal is not started"
        return self._world

    # ---------------------------------------------------------------- what tests use

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._fronts[0].port}"

    @property
    def ports(self) -> list[int]:
        return [f.port for f in self._fronts]

    def env(self) -> dict[str, str]:
        """The variables that point the real SDK at this fake."""
        return {"MODAL_SERVER_URL": self.url, "MODAL_TOKEN_ID": self.token[0], "MODAL_TOKEN_SECRET": self.token[1]}

    @property
    def behaviour(self) -> Behaviour:
        return self.world.behaviour

    @behaviour.setter
    def behaviour(self, value: Behaviour) -> None:
        def set_it() -> None:
            self.world.behaviour = value

        self._do(set_it)

    def add_secret(self, name: str) -> None:
        self._do(lambda: self.world.secrets.setdefault(name, new_id("st")))

    def kill(self, sandbox_id: str, exit_code: int = 1) -> None:
        """The sandbox's command exits on its own now."""
        status = R.GENERIC_STATUS_SUCCESS if exit_code == 0 else R.GENERIC_STATUS_FAILURE
        self._do(lambda: self.world.finish(self.world.sandboxes[sandbox_id], status, exit_code))

    def make_ready(self, sandbox_id: str) -> None:
        def ready() -> None:
            self.world.sandboxes[sandbox_id].ready = True
            self.world.touch()

        self._do(ready)

    def go_down(self, mode: str = "refuse") -> None:
        """The Modal API stops answering: "refuse" (connections refused) or "hang" (a black hole)."""
        assert mode in ("refuse", "hang")
        self._run(_each(self._fronts, lambda f: f.set_mode(mode)))

    def come_back(self) -> None:
        self._run(_each(self._fronts, lambda f: f.set_mode("up")))

    def sandboxes(self) -> list[SandboxView]:
        def snapshot() -> list[SandboxView]:
            w = self.world
            return [
                SandboxView(
                    sandbox_id=sb.sandbox_id,
                    app_id=sb.app_id,
                    tags=dict(sb.tags),
                    running=sb.running,
                    ready=sb.ready,
                    returncode=sb.returncode,
                    web_port=sb.web_port,
                    definition=_copy(sb.definition),
                    image_commands=_layers(w.images, sb.definition.image_id),
                    env=dict(sb.env),
                    secret_ids=list(sb.secret_ids),
                )
                for sb in sorted(w.sandboxes.values(), key=lambda s: s.created_at)
            ]

        return self._do(snapshot)

    def sandbox(self, sandbox_id: str) -> SandboxView:
        return next(s for s in self.sandboxes() if s.sandbox_id == sandbox_id)


async def _serve(server: Server) -> int:
    """Start a gRPC server on a free loopback port and return the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    await server.start(sock=sock)
    return port


async def _each(fronts: list[Front], action: Callable[[Front], Awaitable[None]]) -> None:
    for f in fronts:
        await action(f)


def _layers(images: dict[str, api_pb2.Image], image_id: str) -> list[str]:
    image = images.get(image_id)
    if image is None:
        return []
    below = [line for base in image.base_images for line in _layers(images, base.image_id)]
    return below + list(image.dockerfile_commands)


def _copy(msg: T) -> T:
    out: Any = type(msg)()
    out.CopyFrom(msg)
    return out
