"""Using a claimed Docker sandbox through a PoolManager on the real engine: exec streamed through the
Engine's exec API, timeouts that kill the command's whole tree, stdin, and files through the container's
own shell with symlinks refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from docker_support import http_body
from helpers import wait_for
from test_docker_pool import POOL, config, managers  # noqa: F401 - the fixture
from use_support import CLAIM, output_streams_in_order_and_in_pieces

from poolui.core.tar_stream import MAX_MEMBERS
from poolui.errors import FileNotFound, InvalidRequest
from poolui.sandbox_io import MAX_PATH, collect


async def _claimed(managers: Any, tmp_path: Path) -> tuple[Any, str]:  # noqa: F811
    mgr = await managers.start(tmp_path / "state", config({"target_ready": 1}))
    await mgr.warm_up(60)
    c = await mgr.claim(POOL, timeout=30, **CLAIM)
    return mgr, c.id


async def test_docker_exec_streams_reports_and_kills_on_timeout(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    mgr, cid = await _claimed(managers, tmp_path)
    await output_streams_in_order_and_in_pieces(mgr, POOL, cid)
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


async def test_a_reused_container_keeps_nothing_of_its_last_claim(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    cfg = config({"target_ready": 1, "max_ready": 1, "max_total": 1, "reuse": True, "max_uses": 3,
                  "reset": ["sh", "-c", "echo reset-ran > reset.txt"]}, read_only=True)
    mgr = await managers.start(tmp_path / "state", cfg)
    await mgr.warm_up(60)
    a = await mgr.claim(POOL, timeout=30, env={"SECRET": "from-a"}, files={"a.txt": "A's file"})
    script = "echo hidden > /tmp/a-tmp; echo s > /dev/shm/a-shm; setsid sleep 600 & sleep 600 & echo started"
    assert (await collect(mgr.exec(POOL, a.id, ["sh", "-c", script]))).stdout == b"started\n"
    await mgr.release(POOL, a.id)
    p = mgr.pools[POOL]
    await wait_for(lambda: len(p.handout) == 1, 60, what="the container ready again")
    b = await mgr.claim(POOL, timeout=30)
    assert b.id == a.id
    seen = (await collect(mgr.exec(POOL, b.id, ["sh", "-c", "ls -A . /tmp /dev/shm; echo env=$SECRET; "
                                                             "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]))).stdout
    out = seen.decode()
    assert "a.txt" not in out and "a-tmp" not in out and "a-shm" not in out and "env=\n" in out
    assert "reset.txt" in out and "sleep 600" not in out and "httpd" in out  # the server lived on
    assert (await http_body(b.url))[0] == 200
    await mgr.release(POOL, b.id)
    await wait_for(lambda: len(p.handout) == 1, 60, what="the container ready again")
    assert (p.metrics.resets, p.metrics.creates) == (2, 1)


async def test_docker_listings_past_the_limits_are_refused(managers: Any, tmp_path: Path) -> None:  # noqa: F811
    """More entries than a tar may have, or a path past MAX_PATH: a 422 naming the limit, from a listing
    read up to a bounded size (shell_use.LIST_ENTRY per entry)."""
    mgr, cid = await _claimed(managers, tmp_path)
    script = ('n=$(printf "%0240d" 0); mkdir wide deep && cd wide && i=0; while [ $i -le 10000 ]; '
              'do : > "f$i-$n"; i=$((i+1)); done; cd ../deep && for d in 1 2 3 4 5; do mkdir "d$d$n" && cd "d$d$n"; '
              'done; : > f')
    made = await collect(mgr.exec(POOL, cid, ["sh", "-c", script], timeout=120))
    assert made.ok, made.stderr
    with pytest.raises(InvalidRequest, match=f"more than {MAX_MEMBERS} entries"):
        await mgr.get_tar(POOL, cid, "wide")
    with pytest.raises(InvalidRequest, match=f"at most {MAX_PATH} bytes"):
        await mgr.get_tar(POOL, cid, "deep")
    await mgr.put_file(POOL, cid, "ok/a b\nc.txt", b"newline")  # a name with a newline in it is read right
    with tarfile.open(fileobj=io.BytesIO(await mgr.get_tar(POOL, cid, "ok"))) as t:
        assert [(m.name, m.size) for m in t.getmembers()] == [("a b\nc.txt", 7)]
    await mgr.release(POOL, cid)
