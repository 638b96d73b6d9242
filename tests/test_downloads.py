"""Downloads that cannot exhaust the controller, on real bubblewrap sandboxes under a real `poolui serve`:
a claim's code that makes a tree of many files with long names, or paths past the path limit, gets a 422
naming the limit from GET .../tar/, refused by the agent while it walks, and the server's peak memory
stays within a stated bound; files past the caps are refused from the listing's sizes, before a file is
read; honest tars (long names, large files) come back whole; and a frame from an agent past MAX_FRAME is
never read."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_fixtures import Served, pool_table, served
from test_uploads import peak_rss
from test_use import POOL, claim  # noqa: F401 - the fixture, a claim of this module's `web` pool

from poolui.client import PoolClient
from poolui.core.model import Claim
from poolui.core.tar_stream import MAX_MEMBERS
from poolui.errors import InvalidRequest, ProviderError
from poolui.providers.local import agent_client
from poolui.sandbox_io import MAX_CLAIM_FILES, MAX_FILE, MAX_PATH, collect

GROWTH = 16 << 20  # the most the hostile downloads below may add to the server's peak resident memory
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")

# The security report's reproduction: `depth` nested directories of 255-byte names, then `n` empty files
# of 255-byte names in the deepest one (a disk cap does not limit empty files).
TREE = """
import os, sys
depth, n = int(sys.argv[1]), int(sys.argv[2]); os.makedirs(sys.argv[3]); os.chdir(sys.argv[3])
for i in range(depth):
    name = (f"d{i}" + "x"*250)[:255]; os.makedirs(name, exist_ok=True); os.chdir(name)
for j in range(n):
    os.close(os.open((f"f{j}-" + "y"*250)[:255], os.O_CREAT | os.O_WRONLY, 0o644))
"""


@pytest.fixture(scope="module")
def web() -> Iterator[Served]:
    with served({POOL: pool_table(target_ready=1, max_total=6)}, on_shutdown="terminate") as s:
        yield s


async def _tree(c: PoolClient, cl: Claim, where: str, depth: int, files: int) -> None:
    made = await collect(c.exec(POOL, cl.id, ["python3", "-c", TREE, str(depth), str(files), where], timeout=120))
    assert made.ok, made.stderr


async def test_a_tree_past_the_listing_limits_is_422_and_the_server_stays_small(
        web: Served, claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    assert web.proc is not None
    await _tree(c, cl, "deep", 14, 20_000)  # paths of 3.8 KiB: past MAX_PATH from the fifth directory on
    await _tree(c, cl, "wide", 0, 20_000)  # 20,000 files of 255-byte names: past MAX_MEMBERS
    await _tree(c, cl, "fine", 3, 3)
    assert len(await c.get_tar(POOL, cl.id, "fine")) > 0  # the code paths loaded
    before = peak_rss(web.proc.pid)
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {cl.token}"}, timeout=60) as h:
        for where, limit in (("deep", f"at most {MAX_PATH} bytes per path"),
                             ("wide", f"more than {MAX_MEMBERS} entries"), ("", f"more than {MAX_MEMBERS} entries")):
            r = await h.get(f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/tar/{where}")
            assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), (where, r.text[:300])
            assert limit in r.json()["detail"], (where, r.json()["detail"])
    grown = peak_rss(web.proc.pid) - before
    print(f"peak RSS {before >> 20} MiB before, grown by {grown / (1 << 20):.1f} MiB")
    assert grown <= GROWTH, f"the server's peak memory grew by {grown >> 20} MiB"


async def test_files_past_the_caps_are_refused_from_the_listing_before_any_is_read(
        claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    # Sparse files: their sizes are declared, their data would be zeros read from nowhere.
    big = await collect(c.exec(POOL, cl.id, ["sh", "-c", f"mkdir big sum && truncate -s {MAX_FILE + 1} big/one && "
                                                         f"for i in 1 2 3 4 5; do truncate -s {MAX_FILE - 1} sum/$i; "
                                                         "done"]))
    assert big.ok, big.stderr
    with pytest.raises(InvalidRequest, match=f"big/one is {MAX_FILE + 1} bytes; at most {MAX_FILE} per file"):
        await c.get_tar(POOL, cl.id, "big")
    with pytest.raises(InvalidRequest, match=f"at most {MAX_CLAIM_FILES} come out in one tar"):
        await c.get_tar(POOL, cl.id, "sum")


async def test_honest_tars_with_long_names_and_large_files_come_back_whole(
        claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    long_dir = "/".join(["n" * 200] * 4)  # a path of 1,022 bytes with its file: past ustar's 100, within 1024
    noise = os.urandom(3 << 20)
    await c.put_file(POOL, cl.id, "t/big.bin", noise)
    await c.put_file(POOL, cl.id, f"t/{long_dir}/x.txt", b"long")
    await c.put_file(POOL, cl.id, "t/empty", b"")
    with tarfile.open(fileobj=io.BytesIO(await c.get_tar(POOL, cl.id, "t"))) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    assert got == {"big.bin": noise, f"{long_dir}/x.txt": b"long", "empty": b""}


async def test_a_frame_past_max_frame_is_not_read_and_the_connection_is_dropped(tmp_path: Path) -> None:
    """An agent that says its answer is 1 GiB: the client refuses at the frame's header and hangs up."""
    hung_up = asyncio.get_running_loop().create_future()

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"d" + (1 << 30).to_bytes(4, "big") + b"x" * 1024)
        await writer.drain()
        hung_up.set_result(await reader.read())  # b"" once the client has closed the connection
        writer.close()

    server = await asyncio.start_unix_server(agent, path=str(tmp_path / agent_client.SOCKET))
    async with server:
        with pytest.raises(ProviderError, match=f"a frame of {1 << 30} bytes; at most {agent_client.MAX_FRAME}"):
            await agent_client.listing(tmp_path / agent_client.SOCKET, "", MAX_MEMBERS)
        assert await asyncio.wait_for(hung_up, 10) == b""
