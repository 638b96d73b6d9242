"""One pool's line to Modal: an SDK client, the app, secrets, the built image and sandbox handles.

The SDK runs its own event loop in a thread; its `.aio` calls are awaited from the engine's loop without
blocking it. Every call is bounded here by `api_timeout`, because the SDK alone keeps retrying an
unreachable API for about a minute. After connection trouble the whole session (client, handles) is
closed and a fresh one opened on the next call, so a recovered API is used at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...errors import ProviderError, ProviderUnavailable
from .errors import CREDENTIALS_HINT, diagnose, is_connection_trouble, sdk, translate
from .options import ModalOptions

log = logging.getLogger("poolui.providers.modal")
T = TypeVar("T")


@dataclass
class Session:
    """One SDK client and what was looked up with it; thrown away whole after connection trouble."""

    generation: int
    server_url: str
    client: Any
    app: Any
    secrets: list[Any]
    image_task: asyncio.Task[Any] | None = None
    handles: dict[str, Any] = field(default_factory=dict)  # sandbox id -> modal.Sandbox


class ModalApi:
    def __init__(self, opts: ModalOptions, who: str) -> None:
        self.opts = opts
        self.who = who  # "pool 'NAME'", for messages
        self.session: Session | None = None
        self._generation = 0
        self._connecting: asyncio.Task[Session] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.closed = False

    # ---------------------------------------------------------------- bounded calls

    async def call(self, what: str, fn: Callable[[], Awaitable[T]], timeout: float | None = None,
                   session: Session | None = None) -> T:
        """fn() bounded by the API timeout; SDK errors become poolui errors (the SDK's one as __cause__).

        fn runs in a task of its own that is abandoned (cancelled, reaped later) when time is up or the
        caller is cancelled: the SDK's async generators can swallow a cancellation, which must neither
        keep the caller past its deadline nor make it miss its own cancellation.
        """
        budget = timeout if timeout is not None else self.opts.api_timeout
        # Part of the budget is kept for saying why the API is silent, so the whole call stays within it.
        spare = min(1.0, budget * 0.2)

        async def run() -> T:
            return await fn()

        task = asyncio.ensure_future(run())
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, budget - spare))
        except asyncio.CancelledError:
            self.abandon(task)
            raise
        if not done:
            self.abandon(task)
            self.drop(session)
            url = session.server_url if session else self.server_url()
            why = await diagnose(url, spare)
            raise ProviderError(f"{what}: no answer from the Modal API at {url} within {budget:g}s ({why})")
        if task.cancelled():
            # Not the caller's cancellation: the SDK cancels calls whose client was closed meanwhile.
            raise ProviderError(f"{what}: the call was cut short (its Modal client was closed)")
        try:
            return task.result()
        except Exception as e:
            if is_connection_trouble(e):
                self.drop(session)
            raise translate(e, what) from e

    def abandon(self, task: asyncio.Future[Any]) -> None:
        task.cancel()
        self._track(task)

    def spawn(self, coro: Awaitable[Any]) -> None:
        self._track(asyncio.ensure_future(coro))

    def _track(self, task: asyncio.Future[Any]) -> None:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        if not task.done():
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------------- the session

    def server_url(self) -> str:
        try:
            return str(sdk().config.config.get("server_url"))
        except Exception:
            return "(unknown)"

    def credentials(self) -> tuple[str, str]:
        modal = sdk()
        try:
            token_id = modal.config.config.get("token_id")
            token_secret = modal.config.config.get("token_secret")
        except Exception as e:
            raise ProviderUnavailable(f"{self.who}: cannot read the Modal configuration: {e}") from None
        missing = [n for n, v in (("MODAL_TOKEN_ID", token_id), ("MODAL_TOKEN_SECRET", token_secret)) if not v]
        if missing:
            raise ProviderUnavailable(
                f"{self.who}: Modal credentials are missing ({' and '.join(missing)} not set, and no token "
                f"in {modal.config.user_config_path}): {CREDENTIALS_HINT}"
            )
        return str(token_id), str(token_secret)

    async def connect(self) -> Session:
        """The current session, or the one being opened (callers share one attempt, bounded by api_timeout)."""
        if self.session is not None:
            return self.session
        if self.closed:
            raise ProviderError(f"{self.who}: provider is closed")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> Session:
        modal = sdk()
        from modal_proto import api_pb2

        credentials = self.credentials()
        url = self.server_url()
        # Made with the plain constructor (not from_credentials) so a connect that is given up on can still
        # be closed: otherwise the SDK's connection attempt would go on retrying for a minute.
        client = modal.Client(url, api_pb2.CLIENT_TYPE_CLIENT, credentials)
        env = self.opts.environment or None

        async def open_and_look_up() -> Any:
            await client.__aenter__()
            return await modal.App.lookup.aio(self.opts.app, client=client, create_if_missing=True,
                                              environment_name=env)

        try:
            app = await self.call(f"{self.who}: connect to Modal and look up app '{self.opts.app}'",
                                  open_and_look_up)
            if self.closed:
                raise ProviderError(f"{self.who}: provider is closed")
        except BaseException:
            self.spawn(_close_client(client))
            raise
        secrets = [modal.Secret.from_name(n, environment_name=env, client=client) for n in self.opts.secrets]
        self._generation += 1
        self.session = Session(self._generation, url, client, app, secrets)
        return self.session

    def drop(self, session: Session | None) -> None:
        """Close `session` (the current one when None) with its handles; the next call opens a new one."""
        s = self.session
        if s is None or (session is not None and session is not s):
            return
        self.session = None
        for h in s.handles.values():
            self.spawn(_detach(h))
        self.spawn(_close_client(s.client))

    async def image(self, s: Session) -> Any:
        """The pool's image, built once per session; concurrent creates share one build (build_timeout)."""
        t = s.image_task
        if t is None or (t.done() and (t.cancelled() or t.exception() is not None)):
            t = s.image_task = asyncio.ensure_future(self._build_image(s))
            t.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(t)

    async def _build_image(self, s: Session) -> Any:
        modal = sdk()
        spec = self.opts.image
        if spec.registry:
            image = modal.Image.from_registry(spec.registry)
        elif spec.debian_slim and spec.debian_slim != "default":
            image = modal.Image.debian_slim(python_version=spec.debian_slim)
        else:
            image = modal.Image.debian_slim()
        if spec.apt:
            image = image.apt_install(*spec.apt)
        if spec.pip:
            image = image.pip_install(*spec.pip)
        await self.call(f"{self.who}: build the image", lambda: image.build.aio(s.app), self.opts.build_timeout, s)
        return image

    async def handle(self, sid: str, what: str) -> tuple[Session, Any]:
        """The SDK's handle on sandbox `sid` in the current session (looked up by id when not known yet)."""
        s = await self.connect()
        h = s.handles.get(sid)
        if h is None:
            modal = sdk()
            h = await self.call(f"{what}: look up", lambda: modal.Sandbox.from_id.aio(sid, client=s.client),
                                session=s)
            s.handles[sid] = h
        return s, h

    def keep(self, s: Session, sid: str, h: Any) -> None:
        if self.session is s:
            s.handles[sid] = h

    def forget(self, sid: str) -> None:
        """Release the handle's connections (to the sandbox's command router); the sandbox is untouched."""
        h = self.session.handles.pop(sid, None) if self.session else None
        if h is not None:
            self.spawn(_detach(h))

    async def close(self) -> None:
        self.closed = True
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
        self.drop(None)
        if self._background:
            _, stuck = await asyncio.wait(set(self._background), timeout=5)
            for t in stuck:
                t.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=1)


async def _close_client(client: Any) -> None:
    try:
        async with asyncio.timeout(5):
            await client.close.aio()
    except Exception as e:
        log.debug("closing a Modal client: %s", e)


async def _detach(h: Any) -> None:
    try:
        async with asyncio.timeout(5):
            await h.detach.aio()
    except Exception as e:
        log.debug("detaching a Modal sandbox handle: %s", e)
