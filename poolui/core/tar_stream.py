"""Reading an uploaded tar with bounded memory: blocking code, run in a worker thread (tars.py does).

Chosen: the standard library's tarfile in stream mode ("r|"), which reads forward only and never seeks,
with two guards of our own around it:
- Decompression is ours (gzip, bzip2, xz through their file objects, which decompress no more than is
  asked for), never tarfile's "r|*": that decompresses one whole 10 KiB block at a time, and 10 KiB of
  bzip2 can expand to gigabytes.
- A meter under tarfile counts what it reads. All the headers of one member (pax and GNU extended
  headers, long names, sparse maps) may take at most HEADER_MAX bytes, so a header that declares
  a huge size of its own is never read whole; the expanded stream may be at most MAX_STREAM bytes, and a
  tar at most MAX_MEMBERS members, so a small compressed body cannot buy unbounded work.
Each member's declared size (the header's, a pax `size`, GNU sparse real sizes) is checked against the
per-file and per-claim caps before a byte of its data is read, and the data is then read in chunks of
at most CHUNK bytes; a sparse member's holes come out as zeros, counted in its real size.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO

from ..errors import InvalidRequest
from ..sandbox_io import MAX_CLAIM_FILES, MAX_FILE, check_path

HEADER_MAX = 32 << 10  # bytes of one member's headers, extended headers and sparse map together
MAX_STREAM = MAX_CLAIM_FILES + MAX_FILE  # bytes of the expanded tar: its files, headers and padding
MAX_MEMBERS = 10_000  # files and directories in one tar
CHUNK = 256 << 10  # bytes of member data read at a time
SIZE_KEYS = ("size", "GNU.sparse.size", "GNU.sparse.realsize")  # pax keys that declare a member's size
BROKEN = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)  # what a bad body raises


@dataclass(frozen=True)
class Entry:
    """A regular file of the tar: where it goes under the work directory, its size and permission bits."""

    rel: str
    size: int
    mode: int


def _not_a_tar(e: BaseException) -> InvalidRequest:
    return InvalidRequest(f"the body is not a tar archive ({e or type(e).__name__})")


class _Meter(io.RawIOBase):
    """What tarfile reads through: counts every byte, and refuses past the caps."""

    def __init__(self, source: io.BufferedIOBase) -> None:
        super().__init__()
        self.source = source
        self.total = 0
        self.header_left: int | None = None  # set while tarfile reads a member's headers

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self.source.read(CHUNK if n is None or n < 0 else min(n, CHUNK))
        self.total += len(data)
        if self.total > MAX_STREAM:
            raise InvalidRequest(f"the tar expands to more than {MAX_STREAM} bytes; at most {MAX_CLAIM_FILES} "
                                 "bytes of files may be put into one claim")
        if self.header_left is not None:
            self.header_left -= len(data)
            if self.header_left < 0:
                raise InvalidRequest(f"a tar member's headers (pax and GNU extended headers, long names, sparse "
                                     f"maps) come to more than {HEADER_MAX} bytes; that is all one member may have")
        return data


def _opened(data: bytes) -> io.BufferedIOBase:
    """The body as an uncompressed tar stream: gzip, bzip2 and xz are recognised by their magic bytes."""
    raw = io.BytesIO(data)  # shares the bytes' buffer: no copy
    if data.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if data.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


def declared_size(info: tarfile.TarInfo) -> int:
    """The most any of the member's headers says it holds (for a sparse member, its real size)."""
    sizes = [info.size]
    for key in SIZE_KEYS:
        value = info.pax_headers.get(key)
        if value is None:
            continue
        if not (value.isascii() and value.isdigit()):
            raise InvalidRequest(f"tar member {info.name!r}: pax {key} = {value[:24]!r} is not a size in bytes")
        sizes.append(int(value) if len(value) <= 20 else 1 << 70)  # past 20 digits: beyond any cap anyway
    if min(sizes) < 0:
        raise InvalidRequest(f"tar member {info.name!r} declares a negative size")
    return max(sizes)


class TarWalk:
    """One forward pass over an uploaded tar: its regular files one by one (directories are passed over),
    each checked before its data is read. `room` is what the claim may still put, in bytes."""

    def __init__(self, data: bytes, top: str, room: int) -> None:
        self.top, self.room = top, room
        self.members = 0
        self.declared = 0  # bytes the files so far declare, together
        self._data: IO[bytes] | None = None
        self._left = 0
        self._meter = _Meter(_opened(data))
        self._meter.header_left = HEADER_MAX  # opening reads the first member's headers
        try:  # it lives across calls, over memory only: there is nothing to close
            self._tar = tarfile.open(fileobj=self._meter, mode="r|")  # noqa: SIM115
        except BROKEN as e:
            raise _not_a_tar(e) from None

    def next_file(self) -> Entry | None:
        """The next regular file, checked (its data then comes from read()); None at the end."""
        while True:
            info = self._next_member()
            if info is None:
                return None
            if not info.isdir():
                return self._check(info)

    def _next_member(self) -> tarfile.TarInfo | None:
        assert not self._left, "a tar member's data was not read to its end"
        self._meter.header_left = HEADER_MAX
        try:
            info = self._tar.next()
        except BROKEN as e:
            raise _not_a_tar(e) from None
        finally:
            self._meter.header_left = None
        self._tar.members.clear()  # type: ignore[attr-defined]  # stream mode keeps every member it read
        if info is None:
            return None
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise InvalidRequest(f"the tar has more than {MAX_MEMBERS} members; send it in parts")
        if sum(len(k) + len(v) for k, v in self._tar.pax_headers.items()) > HEADER_MAX:
            raise InvalidRequest(f"the tar's global pax headers come to more than {HEADER_MAX} bytes")
        return info

    def _check(self, info: tarfile.TarInfo) -> Entry:
        if not info.isreg():
            raise InvalidRequest(f"tar member {info.name!r} is a link or a device: only regular files and "
                                 "directories are unpacked")
        rel = check_path(f"{self.top}/{info.name}" if self.top else info.name, "tar member")
        size = declared_size(info)
        if size > MAX_FILE:
            raise InvalidRequest(f"tar member {info.name!r} declares {size} bytes; at most {MAX_FILE} per file")
        self.declared += size
        if self.declared > self.room:
            raise InvalidRequest(f"the tar's files come to more than {self.room} bytes by member {info.name!r}; "
                                 f"this claim may put {self.room} more (at most {MAX_CLAIM_FILES} in all)")
        self._data = self._tar.extractfile(info)
        self._left = info.size  # what its data will really come to; `size` may be more, never less
        return Entry(rel, info.size, info.mode & 0o777)

    def read(self) -> bytes:
        """The current file's next chunk (at most CHUNK bytes); b"" once it has all come."""
        if not self._left:
            return b""
        assert self._data is not None
        try:
            chunk = self._data.read(min(CHUNK, self._left))
        except BROKEN as e:
            raise _not_a_tar(e) from None
        if not chunk:
            raise InvalidRequest(f"the tar ends inside a member, {self._left} bytes short of its declared size")
        self._left -= len(chunk)
        return chunk


def scan(data: bytes, top: str, room: int) -> list[Entry]:
    """Check a whole tar without keeping any of its data: every member's kind, name and declared size
    within the caps, and every file's data there to its declared end. The files, in order."""
    walk = TarWalk(data, top, room)
    files = []
    while (entry := walk.next_file()) is not None:
        while walk.read():
            pass
        files.append(entry)
    return files
