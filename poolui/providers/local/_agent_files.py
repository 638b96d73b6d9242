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
    """The regular files under a directory, relative to it, walked without following a symlink."""
    import json

    path = str(req.get("path") or "")
    try:
        top = open_dir(work, path.split("/") if path else [], create=False)
    except Refused as e:
        end(conn, error=str(e), refused=True)
        return
    files: list[str] = []
    try:
        for root, _, names, dfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            for name in names:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if (st.st_mode & 0o170000) == 0o100000:  # a regular file; symlinks and devices are left out
                    files.append(os.path.normpath(os.path.join(root, name)))
    finally:
        os.close(top)
    frame(conn, b"d", json.dumps(sorted(files)).encode())
    end(conn, count=len(files))
