"""A directory in or out of a claimed sandbox as a tar stream, built from the same file verbs (so every
path check and cap of use.py holds, on every provider that has them).

An upload is checked whole before anything is written: only regular files and directories, every name
under the target directory (no absolute path, no '..'), every declared size within the caps; a tar with
a link or a device in it is refused, and nothing changes. Then it is read again and streamed into the
sandbox member by member, in chunks: the controller never holds a whole member, and the tar's parsing
and decompression run in worker threads, never on the event loop (tar_stream.py has the bounds).
Empty directories are not created. A download holds the regular files under the directory (symlinks
and devices are left out, never followed). Its listing comes first, with sizes, and is bounded where it
is made (at most MAX_MEMBERS entries walked, paths within check_path's limits): the whole download is
checked against the caps from it before a file is read, and is then built in memory, so the most one
download holds is its tar (at most MAX_STREAM bytes, and one tar record), one file while it is copied
in, and the listing.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from ..errors import InvalidRequest
from ..sandbox_io import MAX_CLAIM_FILES, MAX_FILE, check_dir
from . import use
from .tar_stream import MAX_MEMBERS, MAX_STREAM, TarWalk, scan

if TYPE_CHECKING:
    from .pool import Pool

FORMAT: Final = tarfile.PAX_FORMAT  # what get_tar writes: pax, for names past 100 bytes
ENCODING = "utf-8"
BLOCK, RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE
HEADERS_MAX = 3 << 10  # bytes of one member's headers at the most (a pax header for a 1024-byte path)


async def put_tar(pool: Pool, sandbox_id: str, path: str, data: bytes) -> int:
    """Unpack a tar under `path` of the work directory ('' for the top); the number of files written."""
    top = check_dir(path)
    m = use.claimed_member(pool, sandbox_id)
    use.uses(pool, "put_stream")
    room = MAX_CLAIM_FILES - m.files_in
    files = await asyncio.to_thread(scan, data, top, room)  # the whole tar checked; nothing written yet
    walk = await asyncio.to_thread(TarWalk, data, top, room)
    for expected in files:
        entry = await asyncio.to_thread(walk.next_file)
        assert entry == expected, "the same bytes read twice gave two different tars"
        await use.put_stream(pool, sandbox_id, entry.rel, entry.size, _chunks(walk), entry.mode)
    return len(files)


async def _chunks(walk: TarWalk) -> AsyncIterator[bytes]:
    """The current member's data, a chunk at a time, each read in a worker thread."""
    while chunk := await asyncio.to_thread(walk.read):
        yield chunk


async def get_tar(pool: Pool, sandbox_id: str, path: str) -> bytes:
    """The regular files under `path` of the work directory as an uncompressed tar. Checked from the
    listing before a file is read: at most MAX_MEMBERS entries walked, every path within check_path's
    limits, every file within MAX_FILE, the files within MAX_CLAIM_FILES together and the tar within
    MAX_STREAM; each file is then read with no more room than is left (one that grew is refused). So the
    most held is the tar (MAX_STREAM), one file while it is copied in, and the listing."""
    top = check_dir(path)
    m = use.claimed_member(pool, sandbox_id)
    listed: list[tuple[str, int]] = await use.uses(pool, "list_files")(m.sandbox, top, MAX_MEMBERS)
    await asyncio.to_thread(_fits, listed, top)
    out = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=out, mode="w", format=FORMAT, encoding=ENCODING) as archive:
        for name, _ in listed:
            room = max(0, min(MAX_FILE, MAX_CLAIM_FILES - total, MAX_STREAM - out.tell() - HEADERS_MAX))
            data = await use.get_file(pool, sandbox_id, f"{top}/{name}" if top else name, room)
            total += len(data)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            await asyncio.to_thread(archive.addfile, info, io.BytesIO(data))  # copies up to MAX_FILE
    return out.getvalue()  # the buffer itself, trimmed: CPython's BytesIO does not copy it here


def _fits(listed: list[tuple[str, int]], top: str) -> None:
    """InvalidRequest, naming the cap, when the files listed under `top` would not fit get_tar's caps."""
    where = top or "the work directory"
    if len(listed) > MAX_MEMBERS:
        raise InvalidRequest(f"{where} holds more than {MAX_MEMBERS} files; at most {MAX_MEMBERS} come out in "
                             "one tar: fetch it in parts")
    size = 2 * BLOCK + RECORD  # the end blocks and the padding of the last record, at most
    for name, n in listed:
        if n > MAX_FILE:
            raise InvalidRequest(f"{f'{top}/{name}' if top else name} is {n} bytes; at most {MAX_FILE} per file")
        info = tarfile.TarInfo(name)
        info.size = n
        size += len(info.tobuf(FORMAT, ENCODING, "surrogateescape")) + -(-n // BLOCK) * BLOCK
    if (files := sum(n for _, n in listed)) > MAX_CLAIM_FILES:
        raise InvalidRequest(f"{where} holds {files} bytes of files; at most {MAX_CLAIM_FILES} come out in one "
                             f"tar (at most {MAX_FILE} per file): fetch it in parts")
    if size > MAX_STREAM:
        raise InvalidRequest(f"{where} would make a tar of {size} bytes with its headers; at most {MAX_STREAM}: "
                             "fetch it in parts")
