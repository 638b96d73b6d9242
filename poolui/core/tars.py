"""A directory in or out of a claimed sandbox as a tar stream, built from the same file verbs (so every
path check and cap of use.py holds, on every provider that has them).

An upload is checked whole before anything is written: only regular files and directories, every name
under the target directory (no absolute path, no '..'), within the caps; a tar with a link or a device in
it is refused, and nothing changes. Empty directories are not created. A download holds the regular
files under the directory (symlinks and devices are left out, never followed).
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

from ..errors import InvalidRequest
from ..sandbox_io import MAX_CLAIM_FILES, MAX_FILE, check_dir, check_path
from . import use

if TYPE_CHECKING:
    from .pool import Pool


async def put_tar(pool: Pool, sandbox_id: str, path: str, data: bytes) -> int:
    """Unpack a tar under `path` of the work directory ('' for the top); the number of files written."""
    top = check_dir(path)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            files = _regular_files(archive, top)
    except (tarfile.TarError, EOFError) as e:
        raise InvalidRequest(f"the body is not a tar archive ({e})") from None
    total = sum(len(content) for _, content, _ in files)
    m = use.claimed_member(pool, sandbox_id)
    if total > MAX_CLAIM_FILES - m.files_in:
        raise InvalidRequest(f"the tar holds {total} bytes; this claim may put {MAX_CLAIM_FILES - m.files_in} more")
    for rel, content, mode in files:
        await use.put_file(pool, sandbox_id, rel, content, mode)
    return len(files)


def _regular_files(archive: tarfile.TarFile, top: str) -> list[tuple[str, bytes, int]]:
    """(path under the work directory, content, mode) of every member; InvalidRequest for anything else."""
    files = []
    for info in archive.getmembers():
        if info.isdir():
            continue
        if not info.isreg():
            raise InvalidRequest(f"tar member {info.name!r} is a link or a device: only regular files and "
                                 "directories are unpacked")
        rel = check_path(f"{top}/{info.name}" if top else info.name, "tar member")
        extracted = archive.extractfile(info)
        assert extracted is not None
        files.append((rel, extracted.read(), info.mode & 0o777))
    return files


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
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()
