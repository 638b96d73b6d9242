"""The few Modal API calls the poolui provider makes, on top of the SDK's own generated service bases.

Every other call answers UNIMPLEMENTED and is recorded in `unimplemented`, so a change in what the SDK
calls shows up as a failing test instead of a silent hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from grpclib.server import Stream
from modal_proto import api_pb2
from modal_proto import task_command_router_pb2 as sr_pb2
from modal_proto.api_grpc import ModalClientBase
from modal_proto.task_command_router_grpc import TaskCommandRouterBase

from .execs import Execs
from .state import FakeSandbox, World, jwt, new_id
from .web import SandboxWeb

log = logging.getLogger("fake_modal")

R = api_pb2.GenericResult


class Calls:
    """Names of the calls received, and of those the fake does not implement."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.unimplemented: list[str] = []


def _fill_unimplemented(cls: type, calls_attr: str) -> None:
    """Give every abstract call the class does not define an UNIMPLEMENTED answer."""

    def make(name: str) -> Callable[..., Any]:
        async def unimplemented(self: Any, stream: Stream[Any, Any]) -> None:
            getattr(self, calls_attr).unimplemented.append(name)
            log.error("fake Modal: the SDK called %s, which the fake does not implement", name)
            raise GRPCError(Status.UNIMPLEMENTED, f"fake Modal does not implement {name}")

        unimplemented.__name__ = name
        return unimplemented

    for name in list(getattr(cls, "__abstractmethods__", ())):
        setattr(cls, name, make(name))
    cls.__abstractmethods__ = frozenset()  # type: ignore[attr-defined]


class FakeApi(ModalClientBase):
    def __init__(self, world: World, calls: Calls, credentials: tuple[str, str], router_url: str) -> None:
        self.world = world
        self.calls = calls
        self.credentials = credentials
        self.router_url = router_url

    # ---------------------------------------------------------------- helpers

    async def _begin(self, stream: Stream[Any, Any], name: str) -> Any:
        self.calls.seen.append(name)
        md: Any = stream.metadata or {}
        if (md.get("x-modal-token-id"), md.get("x-modal-token-secret")) != self.credentials:
            raise GRPCError(Status.UNAUTHENTICATED, "Token ID or secret is invalid (fake Modal)")
        return await stream.recv_message()

    def _sandbox(self, sandbox_id: str) -> FakeSandbox:
        sb = self.world.sandboxes.get(sandbox_id)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Sandbox {sandbox_id} not found")
        return sb

    # ---------------------------------------------------------------- auth, environment, app, image, secret

    async def AuthTokenGet(self, stream: Stream[Any, Any]) -> None:
        await self._begin(stream, "AuthTokenGet")
        await stream.send_message(api_pb2.AuthTokenGetResponse(token=jwt()))

    async def ClientHello(self, stream: Stream[Any, Any]) -> None:
        await self._begin(stream, "ClientHello")
        await stream.send_message(api_pb2.ClientHelloResponse())

    async def EnvironmentGetOrCreate(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "EnvironmentGetOrCreate")
        name = req.deployment_name or "main"
        settings = api_pb2.EnvironmentSettings(image_builder_version="2025.06", webhook_suffix="fake")
        meta = api_pb2.EnvironmentMetadata(name=name, settings=settings)
        await stream.send_message(api_pb2.EnvironmentGetOrCreateResponse(environment_id="en-" + name, metadata=meta))

    async def AppGetOrCreate(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "AppGetOrCreate")
        app_id = self.world.apps.get(req.app_name)
        if app_id is None:
            if req.object_creation_type != api_pb2.OBJECT_CREATION_TYPE_CREATE_IF_MISSING:
                raise GRPCError(Status.NOT_FOUND, f"App '{req.app_name}' not found")
            app_id = self.world.apps[req.app_name] = new_id("ap", 22)
        await stream.send_message(api_pb2.AppGetOrCreateResponse(app_id=app_id))

    async def ImageGetOrCreate(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "ImageGetOrCreate")
        key = req.image.SerializeToString(deterministic=True)
        same = (i for i, img in self.world.images.items() if img.SerializeToString(deterministic=True) == key)
        image_id = next(same, "")
        if not image_id:
            image_id = new_id("im")
            self.world.images[image_id] = req.image
        done = R(status=R.GENERIC_STATUS_SUCCESS)
        await stream.send_message(api_pb2.ImageGetOrCreateResponse(image_id=image_id, result=done))

    async def SecretGetOrCreate(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SecretGetOrCreate")
        secret_id = self.world.secrets.get(req.deployment_name)
        if secret_id is None:
            raise GRPCError(Status.NOT_FOUND, f"Secret '{req.deployment_name}' not found in environment 'main'")
        await stream.send_message(api_pb2.SecretGetOrCreateResponse(secret_id=secret_id))

    # ---------------------------------------------------------------- sandboxes (the V2 calls)

    async def SandboxCreateV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxCreateV2")
        w = self.world
        if req.app_id not in w.apps.values():
            raise GRPCError(Status.NOT_FOUND, f"App {req.app_id} not found")
        d = req.definition
        if d.image_id not in w.images:
            raise GRPCError(Status.NOT_FOUND, f"Image {d.image_id} not found")
        if d.timeout_secs <= 0 or d.timeout_secs > 24 * 3600:
            raise GRPCError(Status.INVALID_ARGUMENT, f"timeout must be between 1s and 24h, got {d.timeout_secs}s")
        sb = FakeSandbox(
            sandbox_id=new_id("sb"),
            task_id=new_id("ta") + "V",
            app_id=req.app_id,
            definition=d,
            tags={t.tag_name: t.tag_value for t in req.tags},
            created_at=w.created_at(),
            behaviour=w.behaviour,
            # V2 names persisted secrets twice: in the definition and as secret sources.
            secret_ids=list(dict.fromkeys([*d.secret_ids, *(s.secret_id for s in req.secret_sources if s.secret_id)])),
            env={k: v for s in req.secret_sources for k, v in s.env.contents.items()},
        )
        sb.web = SandboxWeb(sb.sandbox_id, w.tls, sb.http_status)
        sb.web_port = sb.web.port
        w.sandboxes[sb.sandbox_id] = sb
        self._schedule(sb)
        w.touch()
        answer = api_pb2.SandboxCreateV2Response(
            sandbox_id=sb.sandbox_id,
            task_id=sb.task_id,
            command_router_access=api_pb2.CommandRouterAccess(url=self.router_url, jwt=jwt()),
            metadata=sb.metadata(),
        )
        if sb.behaviour.tunnels_at_create:
            answer.tunnels.append(sb.tunnel())
        await stream.send_message(answer)

    def _schedule(self, sb: FakeSandbox) -> None:
        loop = asyncio.get_running_loop()
        w, b = self.world, sb.behaviour

        def ready() -> None:
            if sb.running:
                sb.ready = True
                w.touch()

        if b.ready_after is not None:
            sb.timers.append(loop.call_later(b.ready_after, ready))
        if b.exit_after is not None:
            status = R.GENERIC_STATUS_SUCCESS if b.exit_code == 0 else R.GENERIC_STATUS_FAILURE
            sb.timers.append(loop.call_later(b.exit_after, w.finish, sb, status, b.exit_code))
        # The sandbox's own hard lifetime, as Modal enforces `timeout`.
        sb.timers.append(
            loop.call_later(sb.definition.timeout_secs, w.finish, sb, R.GENERIC_STATUS_TIMEOUT, 124)
        )

    async def SandboxWaitV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxWaitV2")
        sb = self._sandbox(req.sandbox_id)
        await self.world.wait_for(lambda: not sb.running, req.timeout)
        await stream.send_message(api_pb2.SandboxWaitResponse(result=sb.result, metadata=sb.metadata()))

    async def SandboxTerminateV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxTerminateV2")
        sb = self._sandbox(req.sandbox_id)
        existing = sb.result
        self.world.finish(sb, R.GENERIC_STATUS_TERMINATED, 137)
        await stream.send_message(api_pb2.SandboxTerminateResponse(existing_result=existing))

    async def SandboxListV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxListV2")
        want = {t.tag_name: t.tag_value for t in req.tags}
        found = [
            sb
            for sb in self.world.sandboxes.values()
            if (not req.app_id or sb.app_id == req.app_id)
            and (req.include_finished or sb.running)
            and all(sb.tags.get(k) == v for k, v in want.items())
            and (not req.before_timestamp or sb.created_at < req.before_timestamp)
        ]
        found.sort(key=lambda sb: sb.created_at, reverse=True)
        await stream.send_message(api_pb2.SandboxListResponse(sandboxes=[sb.info() for sb in found[:50]]))

    async def SandboxTagsGetV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxTagsGetV2")
        sb = self._sandbox(req.sandbox_id)
        tags = [api_pb2.SandboxTag(tag_name=k, tag_value=v) for k, v in sb.tags.items()]
        await stream.send_message(api_pb2.SandboxTagsGetResponse(tags=tags))

    async def SandboxTagsSetV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxTagsSetV2")
        sb = self._sandbox(req.sandbox_id)
        sb.tags = {t.tag_name: t.tag_value for t in req.tags}
        await stream.send_message(empty_pb2.Empty())

    async def SandboxGetTunnelsV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxGetTunnelsV2")
        sb = self._sandbox(req.sandbox_id)
        answer = api_pb2.SandboxGetTunnelsResponse(result=R(status=R.GENERIC_STATUS_SUCCESS))
        answer.tunnels.append(sb.tunnel())
        await stream.send_message(answer)

    async def SandboxGetTaskIdV2(self, stream: Stream[Any, Any]) -> None:
        req = await self._begin(stream, "SandboxGetTaskIdV2")
        sb = self._sandbox(req.sandbox_id)
        if sb.running:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(task_id=sb.task_id))
        else:
            await stream.send_message(api_pb2.SandboxGetTaskIdResponse(task_result=sb.result))

    async def SandboxGetCommandRouterAccess(self, stream: Stream[Any, Any]) -> None:
        await self._begin(stream, "SandboxGetCommandRouterAccess")
        await stream.send_message(api_pb2.SandboxGetCommandRouterAccessResponse(url=self.router_url, jwt=jwt()))


class FakeRouter(TaskCommandRouterBase):
    """The task command router a sandbox's worker runs: readiness waits and execs (execs.py)."""

    def __init__(self, world: World, calls: Calls, execs: Execs) -> None:
        self.world = world
        self.calls = calls
        self.execs = execs

    async def _begin(self, stream: Stream[Any, Any], name: str) -> tuple[Any, FakeSandbox]:
        self.calls.seen.append(name)
        md: Any = stream.metadata or {}
        if not str(md.get("authorization", "")).startswith("Bearer "):
            raise GRPCError(Status.UNAUTHENTICATED, "missing router token (fake Modal)")
        req: Any = await stream.recv_message()
        sb = next((s for s in self.world.sandboxes.values() if s.task_id == req.task_id), None)
        if sb is None:
            raise GRPCError(Status.NOT_FOUND, f"Task {req.task_id} not found")
        return req, sb

    async def TaskExecStart(self, stream: Stream[Any, Any]) -> None:
        req, sb = await self._begin(stream, "TaskExecStart")
        if not sb.running:
            raise GRPCError(Status.FAILED_PRECONDITION, f"Sandbox {sb.sandbox_id} has finished")
        await self.execs.start(sb, req)
        await stream.send_message(sr_pb2.TaskExecStartResponse())

    async def TaskExecStdioRead(self, stream: Stream[Any, Any]) -> None:
        req, _ = await self._begin(stream, "TaskExecStdioRead")
        await self.execs.read(stream, req)

    async def TaskExecWait(self, stream: Stream[Any, Any]) -> None:
        req, _ = await self._begin(stream, "TaskExecWait")
        await stream.send_message(await self.execs.wait(req))

    async def TaskExecStdinWrite(self, stream: Stream[Any, Any]) -> None:
        req, _ = await self._begin(stream, "TaskExecStdinWrite")
        await self.execs.stdin(req)
        await stream.send_message(sr_pb2.TaskExecStdinWriteResponse())

    async def SandboxWaitUntilReady(self, stream: Stream[Any, Any]) -> None:
        req, sb = await self._begin(stream, "SandboxWaitUntilReady")
        await self.world.wait_for(lambda: sb.ready or not sb.running, req.timeout)
        if sb.ready and sb.running:
            await stream.send_message(sr_pb2.SandboxWaitUntilReadyTcrResponse(ready_at=sb.created_at))
        elif not sb.running:
            raise GRPCError(Status.FAILED_PRECONDITION, f"Sandbox {sb.sandbox_id} has finished")
        else:
            raise GRPCError(Status.DEADLINE_EXCEEDED, "Sandbox is not ready yet")


_fill_unimplemented(FakeApi, "calls")
_fill_unimplemented(FakeRouter, "calls")
