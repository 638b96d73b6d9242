"""The engine's event stream of one pool's containers, watched from a thread of its own.

Deaths ("die") are handed to the event loop, marked OOM-killed when the engine said "oom" for the
container. The engine does not promise the order of the two: under load its "oom" can come after the
"die". So a death by SIGKILL (exit code 137, what the OOM killer leaves) with no "oom" yet is told
OOM_GRACE seconds later, or at once when its "oom" comes; any other death is told at once. The stream
reconnects with backoff; after each (re)connect the containers believed alive are checked against the
running ones, so deaths during an engine outage are not missed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from ...backoff import Backoff
from ..common import MEMBER

# (container id, member id or None, how it died); called on the event loop's thread
OnDeath = Callable[[str, str | None, str], None]
OOM_GRACE = 1.0  # seconds a SIGKILLed container's death waits for an "oom" the engine sends after its "die"
KILLED = "137"  # the exit code of a process ended by SIGKILL, as the OOM killer ends it


def _close_quietly(stream: Any) -> None:
    if stream is not None:
        try:
            stream.close()
        except Exception:
            pass


class EventWatcher:
    def __init__(
        self,
        name: str,
        client: Callable[[], Any],
        filters: dict[str, list[str]],
        believed_alive: Callable[[], dict[str, str]],
        on_death: OnDeath,
    ) -> None:
        """client: the SDK client (made anew after an engine outage); believed_alive: container id -> member id."""
        self.name = name
        self._client = client
        self._filters = filters
        self._believed_alive = believed_alive
        self._on_death = on_death
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._closing = threading.Event()
        self.connected = threading.Event()  # set while the event stream is open
        self._lock = threading.Lock()  # the two below: the watcher's thread and the loop's
        self._oom: set[str] = set()  # containers the engine said "oom" for, their "die" still to come
        self._held: dict[str, str | None] = {}  # SIGKILLed, waiting OOM_GRACE for an "oom": container -> member

    def start(self) -> None:
        """On the event loop: start the thread, once (not after close)."""
        if self._thread is None and not self._closing.is_set():
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._watch, name=f"poolui-docker-events-{self.name}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._closing.set()
        _close_quietly(self._stream)

    def _post(self, cid: str, member_id: str | None, how: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_death, cid, member_id, how)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def _watch(self) -> None:
        backoff = Backoff(0.2, 2.0)
        while not self._closing.is_set():
            try:
                client = self._client()
                filters = {**self._filters, "type": "container", "event": ["die", "oom"]}
                self._stream = client.events(decode=True, filters=filters)
                if self._closing.is_set():
                    break
                self._reconcile(client)
                self.connected.set()
                backoff.reset()
                for ev in self._stream:
                    self._event(ev)
            except Exception:
                pass  # engine gone or restarting: reconnect below
            finally:
                self.connected.clear()
                stream, self._stream = self._stream, None
                _close_quietly(stream)
            self._closing.wait(backoff.failed())

    def _event(self, ev: dict[str, Any]) -> None:
        """One "oom" or "die" of the stream, on the watcher's thread."""
        cid, action = ev.get("id", ""), ev.get("Action") or ev.get("status")
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        if action == "oom":
            with self._lock:
                if cid not in self._held:
                    self._oom.add(cid)  # its "die" is still to come
                    return
                member_id = self._held.pop(cid)  # its "die" came first and waits: told now
            self._post(cid, member_id, f"exited with code {KILLED} (OOM-killed)")
        elif action == "die":
            member_id, code = attrs.get(MEMBER), str(attrs.get("exitCode", "?"))
            with self._lock:
                oom = cid in self._oom
                self._oom.discard(cid)
                if not oom and code == KILLED:
                    self._held[cid] = member_id
                    self._settle_later(cid)
                    return
            self._post(cid, member_id, f"exited with code {code}" + (" (OOM-killed)" if oom else ""))

    def _settle_later(self, cid: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(loop.call_later, OOM_GRACE, self._settle, cid)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def _settle(self, cid: str) -> None:
        """On the event loop: a SIGKILLed container whose "oom" did not come within OOM_GRACE."""
        with self._lock:
            if cid not in self._held:
                return  # told already, with its "oom"
            member_id = self._held.pop(cid)
        self._on_death(cid, member_id, f"exited with code {KILLED}")

    def _reconcile(self, client: Any) -> None:
        """After (re)connecting: containers believed alive but no longer running died while we were away."""
        before = self._believed_alive()
        running = {c["Id"] for c in client.api.containers(filters={**self._filters, "status": "running"})}
        for cid, member_id in before.items():
            if cid not in running:
                self._post(cid, member_id, "gone while the engine was unreachable")
