"""Checks of a claimed sandbox's exec that hold on every provider that has one (Docker and Modal here;
the local provider has its own, deeper, tests in test_use.py)."""

from __future__ import annotations

from typing import Any

from poolui.sandbox_io import ExecChunk, ExecResult

# The claim under test was made with this env and these files.
CLAIM = {"env": {"FROM_CLAIM": "yes"}, "files": {"in.txt": "claimed file"}}


async def output_streams_in_order_and_in_pieces(mgr: Any, pool: str, cid: str) -> None:
    """A command that prints, waits for a file and prints again: the first piece arrives before the end,
    stdout and stderr apart, the claim's env and files seen, then the exit code."""
    stream = mgr.exec(pool, cid, ["sh", "-c", "echo first; while [ ! -e go ]; do sleep 0.01; done; "
                                              "cat in.txt; echo $FROM_CLAIM >&2; exit 4"], timeout=30)
    assert await anext(stream) == ExecChunk("stdout", b"first\n")  # before the command can end
    await mgr.put_file(pool, cid, "go", b"")
    rest = [i async for i in stream]
    assert b"".join(i.data for i in rest if isinstance(i, ExecChunk) and i.stream == "stdout") == b"claimed file"
    assert b"".join(i.data for i in rest if isinstance(i, ExecChunk) and i.stream == "stderr") == b"yes\n"
    assert isinstance(rest[-1], ExecResult) and rest[-1].exit_code == 4
