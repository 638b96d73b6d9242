"""Using a claimed Modal sandbox: the real `modal` SDK's Sandbox.exec against the fake's task command
router (tests/fake_modal/execs.py, where a command is a real process rooted in its sandbox's own
temporary directory). Output streams in pieces, exit codes, stdin, claim env, timeouts that end the
command's children, files through the sandbox's shell, a one-shot run; reuse is refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from use_support import CLAIM, output_streams_in_order_and_in_pieces

from poolui.errors import ConfigError, FileNotFound, InvalidRequest
from poolui.pool_file import parse_config
from poolui.sandbox_io import ExecChunk, collect

pytest.importorskip("modal", reason="the modal extra is not installed (pip install -e '.[modal]')")

from modal_support import pool_table  # noqa: E402
from test_modal_pool import POOL, config, managers  # noqa: E402,F401 - the fixture


async def _claimed(managers: Any, tmp_path: Path, **claim: Any) -> tuple[Any, str]:  # noqa: F811
    mgr = await managers.start(tmp_path / "state", config({"target_ready": 1}))
    await mgr.warm_up(30)
    c = await mgr.claim(POOL, timeout=30, **claim)
    return mgr, c.id


async def test_modal_exec_streams_and_reports(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path, **CLAIM)
    await output_streams_in_order_and_in_pieces(mgr, POOL, cid)
    echoed = await collect(mgr.exec(POOL, cid, ["cat"], stdin=b"\x00\xffbytes"))
    assert echoed.ok and echoed.stdout == b"\x00\xffbytes"
    assert (await collect(mgr.exec(POOL, cid, ["sh", "-c", "kill -9 $$"]))).exit_code == 137  # 128 + SIGKILL
    missing = await collect(mgr.exec(POOL, cid, ["no-such-program"]))
    assert missing.exit_code == 127 and "cannot be run" in missing.error
    big = await collect(mgr.exec(POOL, cid, ["sh", "-c", "head -c 5000 /dev/zero"], max_output=1000))
    assert big.truncated and len(big.stdout) == 1000
    await mgr.release(POOL, cid)


async def test_a_modal_timeout_ends_the_command_and_its_children(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path)
    slow = await collect(mgr.exec(POOL, cid, ["sh", "-c", "sleep 600 & echo $! > bg.pid; sleep 600"], timeout=0.5))
    assert slow.timed_out and slow.signal == 9
    child = (await mgr.get_file(POOL, cid, "bg.pid")).decode().strip()
    # Gone, or dead and waiting for an init to reap it (the fake's "init" is this machine's, which may not).
    state = await collect(mgr.exec(POOL, cid, ["sh", "-c", 'sed "s/.*) //" /proc/$1/stat 2>/dev/null | cut -c1',
                                               "state", child]))
    assert state.stdout.strip() in (b"", b"Z")
    assert (await collect(mgr.exec(POOL, cid, ["true"]))).ok  # the sandbox still answers
    stream = mgr.exec(POOL, cid, ["sh", "-c", "echo $$ > left.pid; echo started; exec sleep 600"], timeout=60)
    assert await anext(stream) == ExecChunk("stdout", b"started\n")
    await stream.aclose()  # the caller goes away: so does the command
    left = (await mgr.get_file(POOL, cid, "left.pid")).decode().strip()

    async def gone() -> bool:
        r = await collect(mgr.exec(POOL, cid, ["sh", "-c", 'sed "s/.*) //" /proc/$1/stat 2>/dev/null | cut -c1',
                                               "state", left]))
        return r.stdout.strip() in (b"", b"Z")

    await wait_for(gone, 10, interval=0.05, what="the abandoned command to be killed")
    await mgr.release(POOL, cid)


async def test_modal_files_stay_in_the_work_directory(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path)
    assert await mgr.put_file(POOL, cid, "a/b/c.bin", b"\x00\x01\x02") == 3
    assert await mgr.get_file(POOL, cid, "a/b/c.bin") == b"\x00\x01\x02"
    assert (await collect(mgr.exec(POOL, cid, ["ln", "-s", str(tmp_path), "out-link"]))).ok
    with pytest.raises(InvalidRequest, match="symlink"):
        await mgr.put_file(POOL, cid, "out-link/evil", b"x")
    assert not (tmp_path / "evil").exists()
    with pytest.raises(InvalidRequest, match="'..'"):
        await mgr.put_file(POOL, cid, "../x", b"x")
    with pytest.raises(FileNotFound):
        await mgr.get_file(POOL, cid, "never-written")
    with tarfile.open(fileobj=io.BytesIO(await mgr.get_tar(POOL, cid, "a"))) as t:
        assert [m.name for m in t.getmembers()] == ["b/c.bin"]
    await mgr.release(POOL, cid)
    r = await collect(mgr.run(POOL, ["cat", "in"], files={"in": "one-shot"}, claim_timeout=30))
    assert r.ok and r.stdout == b"one-shot"


async def test_a_modal_reuse_pool_does_not_start(tmp_path: Path, fake: Any) -> None:
    from poolui.core.manager import PoolManager

    cfg = parse_config({"pools": {POOL: pool_table({"reuse": True})}}, "test.toml")
    with pytest.raises(ConfigError, match="cannot reset"):
        async with PoolManager(cfg, state_dir=tmp_path / "state"):
            pass
