"""The agent's file requests (see _agent.py): put and get under the work directory, each path walked one
component at a time with O_NOFOLLOW, so no symlink is ever followed out of it."""

from __future__ import annotations

import os
from typing import Any

from _agent import READ, end, frame


class Refused(Exception):
    pass


def open_dir(work: str, parts: list[str], create: bool) -> int:
    """A directory fd for work/parts[0]/..., each step refusing a symlink (so nothing resolves outside)."""
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, name in enumerate(parts):
            try:
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise Refused(f"{'/'.join(parts[:i + 1])}: no such directory") from None
                os.mkdir(name, 0o755, dir_fd=fd)
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (40, 20):  # ELOOP: a symlink; ENOTDIR: a file
                    raise Refused(f"{'/'.join(parts[:i + 1])} is a symlink or not a directory; paths may not "
                                  "pass through symlinks") from None
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def put(conn: Any, req: dict[str, Any], data: bytes, work: str) -> None:
    """Write the data to a temporary file beside the target, then rename it into place; any failure is
    answered as such (naming the path and the reason) and leaves no temporary file behind."""
    parts = str(req["path"]).split("/")
    try:
        d = open_dir(work, parts[:-1], create=True)
    except Refused as e:
        end(conn, error=str(e), refused=True)
        return
    except OSError as e:  # a name too long, no space left: the request's fault, not the sandbox's
        end(conn, error=f"{req['path']}: {e.strerror or e}", refused=True)
        return
    tmp = f".poolui-put-{os.getpid()}-{id(conn)}"
    try:
        _write(d, tmp, data, int(req.get("mode", 0o644)))
        os.rename(tmp, parts[-1], src_dir_fd=d, dst_dir_fd=d)  # replaces a symlink, never follows it
    except OSError as e:
        try:
            os.unlink(tmp, dir_fd=d)
        except OSError:
            pass
        why = "is a directory" if e.errno == 21 else f"could not be written: {e.strerror or e}"
        end(conn, error=f"{req['path']} {why}", refused=True)
        return
    finally:
        os.close(d)
    end(conn, size=len(data))


def _write(d: int, name: str, data: bytes, mode: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=d)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def get(conn: Any, req: dict[str, Any], work: str) -> None:
    parts = str(req["path"]).split("/")
    limit = int(req.get("max", 0))
    try:
        d = open_dir(work, parts[:-1], create=False)
    except Refused as e:
        end(conn, error=str(e), refused=True)
        return
    try:
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d)
        except FileNotFoundError:
            end(conn, error=f"{req['path']}: no such file", missing=True)
            return
        except OSError as e:
            if e.errno == 40:
                end(conn, error=f"{req['path']} is a symlink; paths may not pass through symlinks", refused=True)
                return
            raise
    finally:
        os.close(d)
    try:
        import stat

        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            end(conn, error=f"{req['path']} is not a regular file", refused=True)
            return
        if st.st_size > limit:
            end(conn, error=f"{req['path']} is {st.st_size} bytes; at most {limit} may be read", too_large=True)
            return
        sent = 0
        while sent <= limit and (chunk := os.read(fd, READ)):
            sent += len(chunk)
            frame(conn, b"d", chunk[:max(0, limit - sent + len(chunk))])
        end(conn, size=min(sent, limit))
    finally:
        os.close(fd)


def listing(conn: Any, req: dict[str, Any], work: str) -> None:
    """The regular files under a directory, relative to it, with their sizes: walked without following a
    symlink, and sent as they are met in frames of at most about BATCH bytes, never built whole. Past
    req["max"] entries met (files, directories, links, devices), or at a path (from the work directory)
    past req["max_path"] bytes or a name past req["max_name"], the answer is a refusal naming the limit,
    and nothing more is walked."""
    path = str(req.get("path") or "")
    try:
        top = open_dir(work, path.split("/") if path else [], create=False)
    except Refused as e:
        end(conn, error=str(e), refused=True)
        return
    walk = _Walk(conn, path, int(req.get("max", 10_000)), int(req.get("max_path", 1024)),
                 int(req.get("max_name", 255)))
    try:
        walk.directory(top, "")
        walk.flush()
    except Refused as e:
        end(conn, error=str(e), refused=True)
        return
    finally:
        os.close(top)
    end(conn, count=walk.files)


BATCH = 32 << 10  # characters of paths sent in one frame (one entry more at most; JSON's escapes at most 12
# bytes a character): so a frame of the listing is at most about 400 KiB, within agent_client.MAX_FRAME


class _Walk:
    """One listing's walk: what it met so far, its limits, and the entries not yet sent."""

    def __init__(self, conn: Any, prefix: str, most: int, max_path: int, max_name: int) -> None:
        self.conn, self.prefix, self.most, self.max_path, self.max_name = conn, prefix, most, max_path, max_name
        self.met = self.files = self.held = 0
        self.batch: list[list[Any]] = []

    def directory(self, fd: int, rel: str) -> None:
        """Every entry of the directory open as `fd` (`rel` under the top), then each of its directories,
        opened without following a symlink (one that is no longer a directory is left out). The fds held
        are those of one path, at most max_path / 2 of them."""
        subdirs = []
        with os.scandir(fd) as entries:
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                self.meet(entry.name, sub)
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append((entry.name, sub))
                elif entry.is_file(follow_symlinks=False):  # a regular file; symlinks and devices are left out
                    self.add(sub, entry.stat(follow_symlinks=False).st_size)
        for name, sub in subdirs:
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                continue
            try:
                self.directory(child, sub)
            finally:
                os.close(child)

    def meet(self, name: str, sub: str) -> None:
        self.met += 1
        where = self.prefix or "the work directory"
        if self.met > self.most:
            raise Refused(f"{where} holds more than {self.most} entries (files, directories, links); at most "
                          f"{self.most} are listed: fetch it in parts")
        full = f"{self.prefix}/{sub}" if self.prefix else sub
        if (n := len(name.encode(errors="surrogatepass"))) > self.max_name:
            raise Refused(f"{where}: the name {name[:32] + '...'!r} is {n} bytes; at most {self.max_name} bytes "
                          f"per name (and {self.max_path} per path)")
        if (n := len(full.encode(errors="surrogatepass"))) > self.max_path:
            raise Refused(f"{where}: the path {full[:48] + '...'!r} is {n} bytes; at most {self.max_path} "
                          "bytes per path under the work directory")

    def add(self, sub: str, size: int) -> None:
        self.files += 1
        self.batch.append([sub, size])
        self.held += len(sub) + 16
        if self.held >= BATCH:
            self.flush()

    def flush(self) -> None:
        import json

        if self.batch:
            frame(self.conn, b"d", json.dumps(self.batch).encode())
        self.batch, self.held = [], 0
