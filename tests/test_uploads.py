"""Uploads that cannot exhaust the controller, on real bubblewrap sandboxes under a real `poolui serve`:
hostile tars (sparse members and headers that declare huge sizes, compressed or not) are refused with a
422 naming the cap before their members are read, while the server's peak memory stays within a stated
bound; honest tars, sparse ones included, arrive whole; a name too long or a write past the sandbox's
disk is a 422 that leaves no temporary file behind."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_fixtures import Served, pool_table, served
from test_use import POOL, claim  # noqa: F401 - the fixture, a claim of this module's `web` pool

from poolui.client import PoolClient
from poolui.core.model import Claim
from poolui.core.tar_stream import HEADER_MAX
from poolui.errors import InvalidRequest
from poolui.sandbox_io import MAX_CLAIM_FILES, MAX_FILE, MAX_NAME, collect

SMALL = "small"
GROWTH = 64 << 20  # the most a burst of hostile uploads may add to the server's peak resident memory
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/bwrap"), reason="bubblewrap is not installed")


@pytest.fixture(scope="module")
def web() -> Iterator[Served]:
    pools = {POOL: pool_table(target_ready=1, max_total=6), SMALL: pool_table(target_ready=1, limits={"disk": "1MiB"})}
    with served(pools, on_shutdown="terminate") as s:
        yield s


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pax_sparse(name: str, real_size: int, data: bytes = b"", at: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    """A member in GNU's pax sparse format 1.0: its map, then `data` at offset `at`, and holes for the rest
    of `real_size` (what GNU tar --sparse --format=posix writes)."""
    stored = f"1\n{at}\n{len(data)}\n".encode().ljust(512, b"\0") + data
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(stored)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(real_size)}
    return info, stored


def gnu_sparse(name: str, real_size: int) -> bytes:
    """A tar of one old-GNU sparse member (type 'S'): 512 bytes stored, `real_size` declared."""
    info = tarfile.TarInfo(name)
    info.type, info.size = tarfile.GNUTYPE_SPARSE, 512
    head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    head[386:398], head[398:410] = b"%011o\0" % 0, b"%011o\0" % 512  # one region: 512 bytes at 0
    head[483:495] = b"%011o\0" % real_size
    head[148:156] = b" " * 8
    head[148:156] = b"%06o\0 " % sum(head)
    return bytes(head) + b"s" * 512 + b"\0" * 1024


def big_pax_header() -> bytes:
    """A pax extended header that says it is 1 GiB long, bzip2'd: a few hundred bytes."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 30
    return bz2.compress(header.tobuf(tarfile.USTAR_FORMAT) + b"9" * (4 << 20))


def hostile() -> list[tuple[str, bytes, str]]:
    """(what, body, what the refusal must name)."""
    mid = MAX_FILE - (1 << 20)
    return [
        ("pax sparse members of 1 GiB each", tar_of([pax_sparse(f"big{i}", 1 << 30) for i in range(4)]),
         f"at most {MAX_FILE} per file"),
        ("an old GNU sparse member of 1 GiB", gnu_sparse("old", 1 << 30), f"at most {MAX_FILE} per file"),
        ("sparse members each under the file cap, past the claim's", tar_of(
            [pax_sparse(f"mid{i}", mid) for i in range(MAX_CLAIM_FILES // mid + 2)]), f"at most {MAX_CLAIM_FILES}"),
        ("a pax header that says it is 1 GiB", big_pax_header(), f"more than {HEADER_MAX} bytes"),
    ]


async def test_hostile_tars_are_refused_before_they_are_read_and_the_server_stays_small(
        web: Served, claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    assert web.proc is not None
    await c.put_tar(POOL, cl.id, "warm", tar_of([(tarfile.TarInfo("empty"), b"")]))  # the code paths loaded
    before = peak_rss(web.proc.pid)
    url = f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/tar/in"
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {cl.token}"}, timeout=60) as h:
        for what, body, cap in hostile():
            assert len(body) <= 24 << 10, what
            r = await h.put(url, content=body, headers={"content-type": "application/x-tar"})
            assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), (what, r.text)
            assert cap in r.json()["detail"], (what, r.json()["detail"])
    grown = peak_rss(web.proc.pid) - before
    assert grown <= GROWTH, f"the server's peak memory grew by {grown >> 20} MiB"
    left = await collect(c.exec(POOL, cl.id, ["ls", "-A"]))
    assert left.stdout.split() == [b"warm"]  # nothing of any refused tar was written


async def test_honest_tars_arrive_whole_sparse_and_compressed_ones_too(claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    noise = os.urandom(3 << 20)  # more than one chunk, and more than one exec's stdin
    plain = tarfile.TarInfo("pkg/noise.bin")
    plain.size = len(noise)
    body = tar_of([pax_sparse("holes.bin", 1 << 20, b"abc", at=1000), (plain, noise)])
    for name, data in (("raw", body), ("gz", gzip.compress(body)), ("bz2", bz2.compress(body))):
        assert await c.put_tar(POOL, cl.id, name, data) == 2
        holes = await c.get_file(POOL, cl.id, f"{name}/holes.bin")
        assert len(holes) == 1 << 20 and holes[1000:1003] == b"abc" and holes.count(0) == (1 << 20) - 3
        assert await c.get_file(POOL, cl.id, f"{name}/pkg/noise.bin") == noise


async def test_a_tar_that_ends_inside_a_member_writes_nothing(claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    first, second = tarfile.TarInfo("first.txt"), tarfile.TarInfo("second.bin")
    first.size, second.size = 5, 100_000
    body = tar_of([(first, b"first"), (second, b"x" * 100_000)])
    with pytest.raises(InvalidRequest, match="not a tar archive|ends inside a member"):
        await c.put_tar(POOL, cl.id, "cut", body[:4096])
    assert (await collect(c.exec(POOL, cl.id, ["ls", "-A"]))).stdout == b""


async def test_a_name_too_long_is_422_naming_the_limit_and_leaves_nothing(
        web: Served, claim: tuple[PoolClient, Claim]) -> None:  # noqa: F811
    c, cl = claim
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {cl.token}"}, timeout=30) as h:
        r = await h.put(f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/files/dir/{'n' * 300}", content=b"x")
        assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), r.text
        assert f"at most {MAX_NAME} bytes per name" in r.json()["detail"]
    long_member = tarfile.TarInfo("d/" + "m" * 300)
    with pytest.raises(InvalidRequest, match=f"at most {MAX_NAME} bytes per name"):
        await c.put_tar(POOL, cl.id, "", tar_of([(long_member, b"")]))
    assert (await collect(c.exec(POOL, cl.id, ["ls", "-A"]))).stdout == b""
    assert await c.put_file(POOL, cl.id, "n" * MAX_NAME, b"ok") == 2  # the limit itself is allowed


async def test_a_write_past_the_sandbox_disk_is_422_and_leaves_no_temporary_file(web: Served) -> None:
    async with web.client(timeout=60) as c:
        cl = await c.claim(SMALL, timeout=30)
        with pytest.raises(InvalidRequest, match="could not be written: No space left"):
            await c.put_file(SMALL, cl.id, "sub/too-big.bin", b"x" * (2 << 20))
        seen = await collect(c.exec(SMALL, cl.id, ["sh", "-c", "ls -A sub; echo alive"]))
        assert seen.stdout == b"alive\n"  # the sandbox lives on, and nothing half-written is left
        await c.release(SMALL, cl.id)
