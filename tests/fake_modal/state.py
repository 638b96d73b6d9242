"""What the fake Modal knows: apps, images, secrets and sandboxes. Lives on the fake's own event loop only."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modal_proto import api_pb2

from .web import SandboxWeb

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, size: int = 14) -> str:
    # Sandbox ids must not look like V1 ids ("sb-" + 22 base62 chars) or the SDK switches to the V1 calls.
    return f"{prefix}-" + "".join(secrets.choice(_ALNUM) for _ in range(size))


def jwt(lifetime: float = 3600.0) -> str:
    """JWT-shaped (the SDK reads `exp` from the payload, nobody checks the signature)."""

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'exp': int(time.time() + lifetime)})}.c2ln"


@dataclass(frozen=True)
class Behaviour:
    """How the next sandboxes behave; tests set FakeModal.behaviour before creating.

    ready_after: seconds from create until the readiness probe passes (None: never).
    exit_after/exit_code: the command exits on its own after this many seconds (None: it keeps running).
    http_status: what the encrypted port answers once ready.
    tunnels_at_create: the create answer already carries the tunnel (else only SandboxGetTunnelsV2 does).
    """

    ready_after: float | None = 0.0
    exit_after: float | None = None
    exit_code: int = 1
    http_status: int = 200
    tunnels_at_create: bool = False


@dataclass
class FakeSandbox:
    sandbox_id: str
    task_id: str
    app_id: str
    definition: api_pb2.Sandbox
    tags: dict[str, str]
    created_at: float
    behaviour: Behaviour
    secret_ids: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    result: api_pb2.GenericResult | None = None
    ready: bool = False
    web: SandboxWeb | None = None
    web_port: int = 0
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.result is None

    @property
    def returncode(self) -> int | None:
        if self.result is None:
            return None
        if self.result.status == api_pb2.GenericResult.GENERIC_STATUS_TIMEOUT:
            return 124
        if self.result.status == api_pb2.GenericResult.GENERIC_STATUS_TERMINATED:
            return 137
        return self.result.exitcode

    def http_status(self) -> int:
        return self.behaviour.http_status if self.ready and self.running else 503

    def tunnel(self) -> api_pb2.TunnelData:
        ports = [p.port for p in self.definition.open_ports.ports]
        return api_pb2.TunnelData(host="127.0.0.1", port=self.web_port, container_port=ports[0] if ports else 0)

    def info(self) -> api_pb2.SandboxInfo:
        return api_pb2.SandboxInfo(
            id=self.sandbox_id,
            created_at=self.created_at,
            app_id=self.app_id,
            task_info=api_pb2.TaskInfo(id=self.task_id, started_at=self.created_at, result=self.result),
            tags=[api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in self.tags.items()],
            metadata=self.metadata(),
        )

    def metadata(self) -> api_pb2.SandboxHandleMetadata:
        return api_pb2.SandboxHandleMetadata(app_id=self.app_id, result=self.result)


class World:
    """The fake's state; every change wakes the long polls waiting in `changed()`."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.tls = tls
        self.apps: dict[str, str] = {}  # name -> app id
        self.images: dict[str, api_pb2.Image] = {}
        self.secrets: dict[str, str] = {}  # name -> secret id
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.behaviour = Behaviour()
        self._changed = asyncio.Event()
        self._clock = 0.0
        self.stopping: set[asyncio.Future[None]] = set()
        self.on_finish: Callable[[str], None] = lambda sandbox_id: None

    def touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() is true or timeout passes; True if it became true."""
        deadline = time.monotonic() + max(0.0, timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return predicate()
        return True

    def created_at(self) -> float:
        # Strictly increasing, so list paging by before_timestamp never skips or repeats a sandbox.
        self._clock = max(time.time(), self._clock + 1e-3)
        return self._clock

    def finish(self, sb: FakeSandbox, status: Any, exitcode: int = 0, exception: str = "") -> None:
        if not sb.running:
            return
        sb.result = api_pb2.GenericResult(status=status, exitcode=exitcode, exception=exception)
        for t in sb.timers:
            t.cancel()
        sb.timers.clear()
        self.on_finish(sb.sandbox_id)
        web, sb.web = sb.web, None
        if web is not None:
            # Blocking shutdown; off the loop so long polls keep being answered meanwhile.
            fut = asyncio.get_running_loop().run_in_executor(None, web.stop)
            self.stopping.add(fut)
            fut.add_done_callback(self.stopping.discard)
        self.touch()
