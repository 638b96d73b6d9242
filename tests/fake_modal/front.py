"""A TCP front door for the fake's gRPC servers, so the whole "network" can fail the way a real one does.

up: bytes flow both ways. refuse: the listening socket is closed and every open connection is reset, so
new connects get ECONNREFUSED. hang: connections are accepted but nothing is forwarded (a black hole),
so callers wait until their own deadline. Coming back re-opens the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class Front:
    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = 0
        self.mode = "up"
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        previous, self.mode = self.mode, mode
        if mode == "refuse":
            self._flowing.set()
            await self._close_listener()
            self._reset_all()
        elif mode == "hang":
            self._flowing.clear()
            if previous == "refuse":
                await self.start()
        else:
            self._flowing.set()
            if previous == "refuse":
                await self.start()

    async def stop(self) -> None:
        await self._close_listener()
        self._reset_all()
        self._flowing.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _reset_all(self) -> None:
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(b_writer)
        up = self._spawn(self._pump(reader, b_writer))
        down = self._spawn(self._pump(b_reader, writer))
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (writer, b_writer):
            w.transport.abort()
            self._writers.discard(w)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                # A black hole holds the bytes (TCP would keep retransmitting them) and lets them through
                # once the network is back, so a connection that survives the outage stays consistent.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
