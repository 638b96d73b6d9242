"""Files into a Docker sandbox through its own shell, on the real engine: a file larger than one exec's
stdin arrives whole (sent in parts), a tar member is streamed in parts, a name too long is refused
before the engine is asked, and an upload that fails halfway leaves no temporary file."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_docker_pool import POOL, config, managers  # noqa: F401 - the fixture

from poolui.core import use
from poolui.errors import InvalidRequest
from poolui.sandbox_io import MAX_NAME, MAX_STDIN, collect


async def test_docker_files_come_in_parts_and_leave_nothing_when_they_fail(managers: Any,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    mgr = await managers.start(tmp_path / "state", config({"target_ready": 1}))
    await mgr.warm_up(60)
    cid = (await mgr.claim(POOL, timeout=30)).id
    big = os.urandom(2 * MAX_STDIN + 12345)
    assert await mgr.put_file(POOL, cid, "d/big.bin", big) == len(big)
    assert await mgr.get_file(POOL, cid, "d/big.bin") == big
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        info = tarfile.TarInfo("t/big.bin")
        info.size = len(big)
        t.addfile(info, io.BytesIO(big))
    assert await mgr.put_tar(POOL, cid, "", out.getvalue()) == 1
    assert await mgr.get_file(POOL, cid, "t/big.bin") == big
    with pytest.raises(InvalidRequest, match=f"at most {MAX_NAME} bytes per name"):
        await mgr.put_file(POOL, cid, "d/" + "n" * 300, b"x")

    async def short() -> AsyncIterator[bytes]:  # says 3 parts, brings 2: refused after the first was written
        yield os.urandom(2 * MAX_STDIN)

    with pytest.raises(InvalidRequest, match="not the"):
        await use.put_stream(mgr.pools[POOL], cid, "d/short.bin", 3 * MAX_STDIN, short())
    left = await collect(mgr.exec(POOL, cid, ["ls", "-A", "d"]))
    assert left.stdout.split() == [b"big.bin"]  # no short.bin, no .poolui-put-* temporary file
    await mgr.release(POOL, cid)
