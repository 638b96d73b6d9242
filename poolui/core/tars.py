"""A directory in or out of a claimed sandbox as a tar stream, built from the same file verbs (so every
path check and cap of use.py holds, on every provider that has them).

An upload is checked whole before anything is written: only regular files and directories, every name
under the target directory (no absolute path, no '..'), every declared size within the caps; a tar with
a link or a device in it is refused, and nothing changes. Then it is read again and streamed into the
sandbox member by member, in chunks: the controller never holds a whole member, and the tar's parsing
and decompression run in worker threads, never on the event loop (tar_stream.py has the bounds).
Empty directories are not created. A download holds the regular files under the directory (symlinks
and devices are left out, never followed).
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..errors import InvalidRequest
from ..sandbox_io import MAX_CLAIM_FILES, MAX_FILE, check_dir
from . import use
from .tar_stream import TarWalk, scan

if TYPE_CHECKING:
    from .pool import Pool


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
    """The regular files under `path` of the work directory as an uncompressed tar."""
    top = check_dir(path)
    m = use.claimed_member(pool, sandbox_id)
    names: list[str] = await use.uses(pool, "list_files")(m.sandbox, top)
    out = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name in names:
            data = await use.get_file(pool, sandbox_id, f"{top}/{name}" if top else name)
            total += len(data)
            if total > MAX_CLAIM_FILES:
                raise InvalidRequest(f"{path or 'the work directory'} holds more than {MAX_CLAIM_FILES} bytes; "
                                     f"fetch it in parts (at most {MAX_FILE} per file)")
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            await asyncio.to_thread(archive.addfile, info, io.BytesIO(data))  # copies up to MAX_FILE
    return out.getvalue()
