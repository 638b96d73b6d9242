"""What workers tell the App. Workers never touch widgets or App state; the App's handlers do."""

from __future__ import annotations

from textual.message import Message

from ..core.model import Event, PoolSnapshot


class SnapshotFetched(Message):
    def __init__(self, pool: str, snapshot: PoolSnapshot, pools: list[PoolSnapshot] | None) -> None:
        super().__init__()
        self.pool = pool
        self.snapshot = snapshot
        self.pools = pools  # every pool's summary, when fetched this time (the switcher's badges)


class FetchFailed(Message):
    def __init__(self, pool: str | None, error: BaseException) -> None:
        super().__init__()
        self.pool = pool
        self.error = error


class EventsArrived(Message):
    def __init__(self, events: list[Event], replace: bool = False) -> None:
        super().__init__()
        self.events = events
        self.replace = replace  # a fresh backlog (after connecting) rather than news


class EventsLost(Message):
    def __init__(self, error: BaseException | None) -> None:
        super().__init__()
        self.error = error


class ActionFinished(Message):
    """A mutating call returned (or failed): say so, and refresh at once."""

    def __init__(self, text: str, *, severity: str = "information", error: BaseException | None = None) -> None:
        super().__init__()
        self.text = text
        self.severity = severity
        self.error = error
