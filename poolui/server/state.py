"""What one app holds beside its routes: the control object, the options, stream statistics, and the
background rollbacks it must keep alive until they finish."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..control import Control


@dataclass
class ServerOptions:
    events_queue: int = 1000  # per events client
    events_write_timeout: float = 10.0  # a client whose socket takes no write for this long is dropped
    events_heartbeat: float = 15.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class StreamStats:
    """Shared by every events stream of one app, shown on /metrics."""

    open: int = 0
    dropped: int = 0


@dataclass
class ServerState:
    control: Control
    options: ServerOptions
    stats: StreamStats = field(default_factory=StreamStats)
    background: set[asyncio.Task[Any]] = field(default_factory=set)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("poolui")
    except PackageNotFoundError:
        return "0"
