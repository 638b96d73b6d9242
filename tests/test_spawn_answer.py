"""The agent's reading of a spawner's answer pipe (providers/local/_agent_spawn.py Spawned), on real pipes:
a spawner gone before it named the command (the command can kill it that soon) costs the exec its status,
not its output. The whole path with a real sandbox is in test_spawner.py; the order of a kill and the
spawner's first line cannot be forced there, so it is forced here."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

import pytest

from poolui.providers.local._agent_spawn import Spawned, SpawnLost


class GoneSpawner:
    """The spawner side Spawned reports to: counts being told it is gone; and the write ends of the pipes
    (the spawner's answer, the command's output), each closed once."""

    def __init__(self, answer_w: int, out_w: int) -> None:
        self.told = 0
        self.answer_w, self.out_w = answer_w, out_w
        self.open = {answer_w, out_w}
        self.poller = select.poll()  # the exec pump's poll, which Spawned registers its descriptors with

    def gone(self) -> None:
        self.told += 1

    def shut(self, fd: int) -> None:
        self.open.remove(fd)
        os.close(fd)


@pytest.fixture
def spawned() -> Iterator[tuple[Spawned, GoneSpawner]]:
    answer_r, answer_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    for fd in (answer_r, out_r, err_r):
        os.set_blocking(fd, False)
    os.close(err_w)
    spawner = GoneSpawner(answer_w, out_w)
    proc = Spawned(spawner, answer_r, None, out_r, err_r)  # type: ignore[arg-type]  # the part it calls
    proc.watch(spawner.poller)
    try:
        yield proc, spawner
    finally:
        proc.close()
        for fd in list(spawner.open):
            spawner.shut(fd)


def test_a_spawner_gone_before_naming_the_command_leaves_its_output_to_end(
        spawned: tuple[Spawned, GoneSpawner]) -> None:
    proc, spawner = spawned
    poller = spawner.poller
    spawner.shut(spawner.answer_w)  # killed before it wrote "pid N"
    assert proc.ready(proc.answer, poller) is False  # not over: the command may still be writing
    assert proc.answer_by is None and spawner.told == 0  # no deadline for a pid that cannot come
    os.write(spawner.out_w, b"after\n")  # the command goes on, and its output is read as any
    assert os.read(proc.stdout, 100) == b"after\n"
    spawner.shut(spawner.out_w)
    with pytest.raises(SpawnLost, match="ended without saying how the command ended"):
        proc.quiet(poller)  # its outputs' end: now the lost status is said
    assert spawner.told == 1


def test_outputs_closed_first_then_the_spawner_gone_unnamed_ends_the_exec(
        spawned: tuple[Spawned, GoneSpawner]) -> None:
    proc, spawner = spawned
    poller = spawner.poller
    spawner.shut(spawner.out_w)
    assert proc.quiet(poller) is False  # outputs closed, the spawner still there: its words may come
    spawner.shut(spawner.answer_w)
    with pytest.raises(SpawnLost):
        proc.ready(proc.answer, poller)  # nothing left to wait for: no pid to watch, no output to read
    assert spawner.told == 1


def test_a_spawner_that_named_the_command_and_said_its_status_is_heard(
        spawned: tuple[Spawned, GoneSpawner]) -> None:
    proc, spawner = spawned
    poller = spawner.poller
    os.write(spawner.answer_w, b"pid 4242\nstatus 3\n")
    spawner.shut(spawner.answer_w)
    assert proc.ready(proc.answer, poller) is True and (proc.pid, proc.status) == (4242, 3)
    assert spawner.told == 0
