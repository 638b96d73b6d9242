"""Using a claimed Docker sandbox through a PoolManager on the real engine: exec streamed through the
Engine's exec API, timeouts that kill the command's whole tree, stdin, and files through the container's
own shell with symlinks refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from test_docker_pool import POOL, config, managers  # noqa: F401 - the fixture

from poolui.errors import FileNotFound, InvalidRequest
from poolui.sandbox_io import ExecChunk, ExecResult, collect


async def _claimed(managers: Any, tmp_path: Path) -> tuple[Any, str]:  # noqa: F811
    mgr = await managers.start(tmp_path / "state", config({"target_ready": 1}))
    await mgr.warm_up(60)
    c = await mgr.claim(POOL, timeout=30, env={"FROM_CLAIM": "yes"}, files={"in.txt": "claimed file"})
    return mgr, c.id


async def test_docker_exec_streams_reports_and_kills_on_timeout(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path)
    stream = mgr.exec(POOL, cid, ["sh", "-c", "echo first; while [ ! -e go ]; do sleep 0.01; done; "
                                              "cat in.txt; echo $FROM_CLAIM >&2; exit 4"], timeout=30)
    assert await anext(stream) == ExecChunk("stdout", b"first\n")  # before the command can end
    await mgr.put_file(POOL, cid, "go", b"")
    rest = [i async for i in stream]
    assert b"".join(i.data for i in rest if isinstance(i, ExecChunk) and i.stream == "stdout") == b"claimed file"
    assert b"".join(i.data for i in rest if isinstance(i, ExecChunk) and i.stream == "stderr") == b"yes\n"
    assert isinstance(rest[-1], ExecResult) and rest[-1].exit_code == 4
    slow = await collect(mgr.exec(POOL, cid, ["sh", "-c", "sleep 600 & echo $! > bg.pid; sleep 600"], timeout=0.5))
    assert slow.timed_out and slow.signal == 9
    child = (await mgr.get_file(POOL, cid, "bg.pid")).decode().strip()
    assert (await collect(mgr.exec(POOL, cid, ["kill", "-0", child]))).exit_code != 0
    echoed = await collect(mgr.exec(POOL, cid, ["cat"], stdin=b"\x00\xffbytes"))
    assert echoed.ok and echoed.stdout == b"\x00\xffbytes"
    assert (await collect(mgr.exec(POOL, cid, ["no-such-program"]))).exit_code == 127
    await mgr.release(POOL, cid)


async def test_docker_files_stay_in_the_work_directory(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path)
    assert await mgr.put_file(POOL, cid, "a/b/c.bin", b"\x00\x01\x02") == 3
    assert await mgr.get_file(POOL, cid, "a/b/c.bin") == b"\x00\x01\x02"
    await collect(mgr.exec(POOL, cid, ["ln", "-s", "/etc", "etc-link"]))
    with pytest.raises(InvalidRequest, match="symlink"):
        await mgr.put_file(POOL, cid, "etc-link/evil", b"x")
    with pytest.raises(InvalidRequest, match="symlink"):
        await mgr.get_file(POOL, cid, "etc-link")
    with pytest.raises(InvalidRequest, match="'..'"):
        await mgr.put_file(POOL, cid, "../x", b"x")
    assert (await collect(mgr.exec(POOL, cid, ["test", "-e", "/etc/evil"]))).exit_code != 0
    with pytest.raises(FileNotFound):
        await mgr.get_file(POOL, cid, "never-written")
    assert await mgr.put_file(POOL, cid, "a/b/d.txt", b"d") == 1
    tar = await mgr.get_tar(POOL, cid, "a")
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert sorted(m.name for m in t.getmembers()) == ["b/c.bin", "b/d.txt"]
    await mgr.release(POOL, cid)
