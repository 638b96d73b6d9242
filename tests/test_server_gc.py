"""`poolui serve` freezes its start-up heap, so no full collection walks it again in the middle of claims."""

from __future__ import annotations

import gc

from poolui.server.run import freeze_heap


def test_the_heap_alive_at_start_up_is_frozen_and_its_garbage_freed() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    Cycle()  # garbage in a reference cycle: only a collection frees it
    alive = Cycle()
    try:
        frozen = freeze_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(type(o) is Cycle and o is not alive for o in gc.get_objects())  # freed, not frozen
        assert not gc.is_tracked(alive) or alive not in gc.get_objects()  # out of the collector's sight
    finally:
        gc.unfreeze()
