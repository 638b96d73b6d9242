"""A claim over HTTP that never loses a sandbox when the client goes away.

The engine guarantees that a cancelled claimer never keeps a member (also one cancelled while its claim
checks health or writes files). The HTTP layer adds the other half: a claim made for a client that disconnected
before the answer was written is released at once. What cannot be known (the answer reached the kernel,
then the client died before reading it) is bounded by the sandbox's TTL, and a client that retries with the
same claim_key gets the same sandbox back.

Two ways, one promise:
- A warm claim (a ready member is there, nothing to wait for: its row is written as it is made) is made in
  the request's own task: the client's leaving is looked at before claiming and again before writing
  (`client_gone`, no wait). No extra task, watcher or loop turn: most claims go this way (`deliver`).
- A claim that must wait (a cold pool, a health check, files to write) runs in a task of its own beside a
  watcher of the connection, so a client that leaves while it waits stops the wait (`ClaimDelivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..core.claims import REPEATED
from ..core.model import Claim
from ..errors import PoolError
from .middleware import send_json

log = logging.getLogger("poolui.server")


def client_gone(receive: Receive) -> bool:
    """Whether the client is known to have left, found without waiting: receive() runs up to its first
    wait and is dropped there. The body was read already, so the only message it can have is the
    disconnect; the server sets that the moment it sees the connection lost. uvicorn's receive is a method
    of its request cycle, whose `disconnected` is what that receive() would go by: read at once."""
    said = getattr(getattr(receive, "__self__", None), "disconnected", None)
    if isinstance(said, bool):  # uvicorn's request cycle tells it itself: no coroutine to make and drop
        return said
    step = receive()
    if not inspect.iscoroutine(step):
        return False
    try:
        step.send(None)
    except StopIteration as done:
        return bool(done.value and done.value.get("type") == "http.disconnect")
    step.close()  # it waits: nothing has come (the wait it began is undone)
    return False


async def give_back(claim: Claim, release: Callable[[str], Awaitable[Any]]) -> None:
    """Release a claim whose answer was not delivered (not a repeated one: an earlier request answers for it)."""
    if claim.reason == REPEATED:
        return
    log.info("client left before claim %s of pool %s was delivered: releasing it", claim.id, claim.pool)
    try:
        await asyncio.shield(release(claim.id))
    except PoolError:
        pass
    except Exception:
        log.exception("releasing undelivered claim %s failed", claim.id)


async def deliver(claim: Claim, release: Callable[[str], Awaitable[Any]], receive: Receive, send: Send) -> bool:
    """Write a claim made in the request's own task, if its client is still there; else, or if the write
    fails, give the claim back. From the look at the connection to the write there is no wait (a paused
    socket aside, as for every answer), so a loss the server has seen cannot slip between them."""
    if client_gone(receive):
        await give_back(claim, release)
        return False
    try:
        await send_json(send, 200, msgspec.json.encode(claim.to_dict()))
    except BaseException:
        with contextlib.suppress(BaseException):
            await give_back(claim, release)
        raise
    return True


async def wait_disconnect(receive: Receive) -> None:
    """Returns when the client has gone (the body was read already, so nothing else can arrive)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ClaimDelivery:
    """Runs one claim for one request and owns the rollback if the answer cannot be delivered."""

    def __init__(self, claim: Callable[[], Awaitable[Claim]], release: Callable[[str], Awaitable[Any]],
                 receive: Receive, background: set[asyncio.Task[Any]]) -> None:
        """background: where rollbacks started from callbacks are kept until they finish (the app's)."""
        self._claim = claim
        self._background = background
        self._release = release
        self._receive = receive
        self.watcher: asyncio.Task[None] | None = None
        self.settled = False  # the answer is being written, or the claim was given back
        self._rolled_back = False

    async def run(self) -> Claim | None:
        """The claim, or None when the client left before it was made (any claim made then is released)."""
        self.watcher = asyncio.ensure_future(wait_disconnect(self._receive))
        task = asyncio.ensure_future(self._claim())
        try:
            await asyncio.wait({task, self.watcher}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self.watcher.cancel()
            await self._abandon(task)
            raise
        if not task.done():
            await self._abandon(task)
            return None
        try:
            claim = task.result()
        except BaseException:
            self.watcher.cancel()
            raise
        if self.watcher.done():  # both finished in the same turn: the client is gone all the same
            await self.rollback(claim)
            return None
        # Should the request be cancelled before the answer is even attempted (a forced shutdown lands between
        # the endpoint and the response), the connection's end still gives the claim back.
        self.watcher.add_done_callback(lambda w: self._gone_before_answer(w, claim))
        return claim

    def _gone_before_answer(self, watcher: asyncio.Task[None], claim: Claim) -> None:
        if not self.settled and not watcher.cancelled():
            self.settled = True
            task = asyncio.ensure_future(self.rollback(claim))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _abandon(self, task: asyncio.Task[Claim]) -> None:
        task.cancel()
        try:
            claim = await asyncio.shield(task)
        except (asyncio.CancelledError, PoolError):
            return
        except Exception:
            log.exception("claim failed while its client was leaving")
            return
        await self.rollback(claim)

    async def rollback(self, claim: Claim) -> None:
        self.settled = True
        if self._rolled_back:
            return
        self._rolled_back = True
        await give_back(claim, self._release)

    def response(self, claim: Claim) -> ClaimResponse:
        assert self.watcher is not None
        return ClaimResponse(claim, self)


class ClaimResponse(Response):
    """The claim's answer; written only while the client is still there, else the claim is given back."""

    media_type = "application/json"

    def __init__(self, claim: Claim, delivery: ClaimDelivery) -> None:
        super().__init__(msgspec.json.encode(claim.to_dict()))
        self._claim = claim
        self._delivery = delivery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = self._delivery.watcher
        assert watcher is not None
        delivered = False
        try:
            # One turn of the loop lets a connection loss that was already seen wake the watcher; from the
            # check to the (small, unbuffered) write below there is no await, so nothing can slip between.
            await asyncio.sleep(0)
            if not watcher.done():
                self._delivery.settled = True  # from here on, this method answers for the claim
                await super().__call__(scope, receive, send)
                delivered = True
                log.debug("claim %s of pool %s written to the client", self._claim.id, self._claim.pool)
        finally:
            watcher.cancel()
            if not delivered:
                with contextlib.suppress(BaseException):
                    await self._delivery.rollback(self._claim)
