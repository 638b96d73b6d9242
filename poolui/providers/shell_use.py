"""Files, kills and resets through a sandbox's own shell, for providers whose only way in is an exec
(Docker, Modal): a POSIX sh in the image is all they need.

Each script checks every path component for a symlink; whatever a symlink might still be raced into
stays inside the sandbox, since the shell runs there. Paths reach the scripts already checked by
sandbox_io.check_path (relative, no '..'), and as arguments, never spliced into the script's text.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from ..errors import FileNotFound, InvalidRequest, ProviderError
from ..sandbox_io import MAX_PATH, MAX_STDIN, ExecChunk, ExecRequest, ExecResult, check_path, collect, exec_request

if TYPE_CHECKING:
    from .base import Sandbox

MARKER = "POOLUI_EXEC"  # every exec carries MARKER=<random> in its environment, so its whole tree can be found
# $1 the marker's NAME=VALUE: SIGKILL every process whose environment carries it.
KILL = ('for p in /proc/[0-9]*; do grep -q "$1" "$p/environ" 2>/dev/null && kill -9 "${p#/proc/}"; done; '
        "exit 0")
# $1 the path; parents are made, none may be a symlink; the file is replaced (a symlink there is replaced,
# never followed). Exit 3: a symlink on the way; 4: not a regular file; 5: too large; 6: missing.
WALK = ('p="$1"; d=$(dirname "$p"); c=.; IFS=/; for part in $d; do [ "$part" = . ] && continue; c="$c/$part"; '
        '[ -L "$c" ] && { echo "$c" >&2; exit 3; }; done; unset IFS; ')
# $1 the path, $2 the mode, $3 a tag naming the temporary file, $4 which part this is: a file comes in parts
# of at most MAX_STDIN bytes (first, more..., last; or one "only"), appended to a temporary file beside
# it that the last part moves into place. Exit 9: it could not be written (stderr says why); the
# temporary file is then removed.
PUT = WALK + ('mkdir -p "$d" && [ ! -d "$p" ] || exit 4; t="$d/.poolui-put-$3"; '
              'case "$4" in first|only) cat > "$t";; *) [ -f "$t" ] && [ ! -L "$t" ] && cat >> "$t";; esac '
              '|| { rm -f "$t"; exit 9; }; case "$4" in last|only) chmod "$2" "$t" && mv -f "$t" "$p" '
              '|| { rm -f "$t"; exit 9; };; esac')
DROP = 'rm -f "$(dirname "$1")/.poolui-put-$2"'  # a failed put's temporary file
# $2 the directory to list, $3 BATCH, $4 the most bytes the listing may come to: past them `head` stops
# reading, and find ends at its next write (SIGPIPE) instead of walking the rest.
LIST = WALK + ('[ -L "$2" ] && exit 3; cd "$2" 2>/dev/null || exit 6; find . -exec sh -c "$3" batch {} + '
               '| head -c "$4"')
# One batch of the paths find met: their count, each one's lstat mode (hex) and size, then the paths, each
# NUL-ended (stat's lines hold no name, so a name with a newline in it is read right); "!" when one of
# them could not be stat'ed (it went while the directory was listed).
BATCH = ('m=$(stat -c "%f %s" -- "$@") || { printf "!\\000"; exit 1; }; printf "%s\\000" "$#"; '
         'printf "%s\\n" "$m" | tr "\\n" "\\000"; printf "%s\\000" "$@"')
LIST_ENTRY = MAX_PATH + 64  # bytes one entry of a listing may take: its path, "./", mode, size, NULs
GET = WALK + ('[ -L "$p" ] && exit 3; [ -e "$p" ] || exit 6; [ -f "$p" ] || exit 4; '
              '[ $(wc -c < "$p") -le "$2" ] || exit 5; cat "$p"')
# Between two claims. Kept: the sandbox's init and server, which are in session $1 (an exec starts in a
# session of its own, and no process can move into an existing session, so nothing a claim started can
# hide there), and this script's own session. Everything else is SIGKILLed, again until none is left;
# then the directories given after $1 are emptied and checked. Exit 7: processes survived; 8: not empty.
RESET = ('keep=$1; shift; me=$(sed "s/.*) //" /proc/self/stat | cut -d" " -f4); '
         'sweep() { n=0; for p in /proc/[0-9]*; do s=$(sed "s/.*) //" "$p/stat" 2>/dev/null | cut -d" " -f4); '
         '[ -z "$s" ] || [ "$s" = "$keep" ] || [ "$s" = "$me" ] && continue; kill -9 "${p#/proc/}" 2>/dev/null; '
         'n=$((n+1)); done; [ $n = 0 ]; }; '
         'i=0; until sweep; do i=$((i+1)); [ $i -ge 50 ] && { echo "processes survived SIGKILL" >&2; exit 7; }; '
         'sleep 0.02; done; '
         'for d in "$@"; do [ -d "$d" ] || continue; find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ; '
         '[ -z "$(ls -A "$d")" ] || { echo "$d could not be emptied" >&2; exit 8; }; done')


class ShellUse:
    """put_file, get_file, list_files and reset for a provider that has exec (its own, in the sandbox)."""

    def exec(self, sb: Sandbox, req: ExecRequest) -> AsyncIterator[ExecChunk | ExecResult]:
        raise NotImplementedError  # the provider's

    async def put_file(self, sb: Sandbox, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write `data` to `path` under the work directory (parents made; symlinks on the way refused)."""
        await self.put_stream(sb, path, len(data), _pieces(data), mode)

    async def put_stream(self, sb: Sandbox, path: str, size: int, chunks: AsyncIterator[bytes],
                         mode: int = 0o644) -> None:
        """As put_file, the data passed on in parts of at most MAX_STDIN bytes as it comes (one exec each,
        since an exec's stdin is bytes), never held whole; nothing is left when a part fails."""
        tag = secrets.token_hex(8)
        held, sent, step = b"", 0, "first"
        try:
            async for chunk in chunks:
                held += chunk
                while len(held) > MAX_STDIN:  # a part is sent once more follows it, so the last one says so
                    await self._put_part(sb, path, mode, tag, step, held[:MAX_STDIN])
                    sent, held, step = sent + MAX_STDIN, held[MAX_STDIN:], "more"
            if sent + len(held) != size:
                raise InvalidRequest(f"{path}: its data came to {sent + len(held)} bytes, not the {size} it declared")
            await self._put_part(sb, path, mode, tag, "only" if step == "first" else "last", held)
        except BaseException:
            with contextlib.suppress(Exception):  # harmless when there is none; the sandbox's own shell runs it
                await collect(self.exec(sb, exec_request(["sh", "-c", DROP, "drop", path, tag])))
            raise

    async def _put_part(self, sb: Sandbox, path: str, mode: int, tag: str, step: str, data: bytes) -> None:
        r = await collect(self.exec(sb, exec_request(["sh", "-c", PUT, "put", path, f"{mode:o}", tag, step],
                                                     stdin=data)))
        _check(r, path)

    async def list_files(self, sb: Sandbox, path: str, most: int) -> list[tuple[str, int]]:
        """The regular files under a directory of the work directory ('' for all), relative to it, with their
        sizes; InvalidRequest past `most` entries, or a path or name longer than check_path allows. The
        listing is read up to `most` * LIST_ENTRY bytes at the most, and is parsed as it is read."""
        cap = most * LIST_ENTRY
        r = await collect(self.exec(sb, exec_request(["sh", "-c", LIST, "list", f"{path or '.'}/.", path or ".",
                                                      BATCH, str(cap + 1)], max_output=cap + 1)))
        _check(r, path or ".")
        return sorted(_listed(r.stdout, path, most, cap))

    async def get_file(self, sb: Sandbox, path: str, limit: int) -> bytes:
        """The file at `path` under the work directory; InvalidRequest when larger than `limit` bytes."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", GET, "get", path, str(limit)],
                                                     max_output=limit)))
        _check(r, path)
        return r.stdout

    async def shell_reset(self, sb: Sandbox, keep_session: int, wipe: list[str], argv: tuple[str, ...],
                          timeout: float) -> None:
        """Kill all but session `keep_session`, empty `wipe`, then run `argv` in the work directory;
        ProviderError when any of it fails."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", RESET, "reset", str(keep_session), *wipe],
                                                     timeout=timeout)))
        if not r.ok:
            raise ProviderError(f"reset: {r.stderr.decode(errors='replace').strip()[:200] or r.describe()}")
        if argv:
            r = await collect(self.exec(sb, exec_request(list(argv), timeout=timeout)))
            if not r.ok:
                raise ProviderError(f"the reset command {r.describe()}: "
                                    f"{r.stderr.decode(errors='replace').strip()[-200:]}")


def _listed(out: bytes, top: str, most: int, cap: int) -> list[tuple[str, int]]:
    """The regular files of LIST's output, each batch counted before it is read and each path checked (so
    no more than `most` entries are ever held); a listing cut at `cap` bytes is refused naming the limits.
    The output comes from the sandbox's own shell and tools: what does not parse is a ProviderError."""
    where = top or "the work directory"
    tokens = _tokens(out)
    found: list[tuple[str, int]] = []
    met = 0
    try:
        for head in tokens:
            if head == b"!":
                raise InvalidRequest(f"{where} changed while it was listed; try again")
            met += int(head)
            if met > most + 1:  # "." is met too
                raise InvalidRequest(f"{where} holds more than {most} entries (files, directories, links); at "
                                     f"most {most} are listed: fetch it in parts")
            stats = [next(tokens, None) for _ in range(int(head))]
            for stat, name in zip(stats, [next(tokens, None) for _ in stats], strict=True):
                if stat is None or name is None:
                    break  # cut at `cap`
                rel = name.decode(errors="surrogateescape").removeprefix("./")
                mode, size = stat.split()
                if rel != ".":
                    check_path(f"{top}/{rel}" if top else rel, f"a file under {where}")
                    if int(mode, 16) & 0o170000 == 0o100000:  # regular; symlinks and devices are left out
                        found.append((rel, int(size)))
    except ValueError:
        raise ProviderError(f"listing {where}: the sandbox's find and stat gave what is not a listing") from None
    if len(out) > cap:
        raise InvalidRequest(f"{where}: its listing passed {cap} bytes: more than {most} entries, or paths over "
                             f"{MAX_PATH} bytes")
    return found


def _tokens(out: bytes) -> Iterator[bytes]:
    """The NUL-ended pieces of `out`, one at a time (a piece cut short at its end is left out)."""
    start = 0
    while (stop := out.find(b"\0", start)) >= 0:
        yield out[start:stop]
        start = stop + 1


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), MAX_STDIN):
        yield data[i:i + MAX_STDIN]


def _check(r: ExecResult, path: str) -> None:
    why = {3: f"{path}: {r.stderr.decode(errors='replace').strip() or 'a part'} is a symlink; paths may not pass "
              "through symlinks",
           4: f"{path} is not a regular file", 5: f"{path} is larger than a file may be",
           9: f"{path} could not be written: {r.stderr.decode(errors='replace').strip()[-200:] or r.describe()}"}
    if r.exit_code == 6:
        raise FileNotFound(f"{path}: no such file or directory")
    if r.exit_code in why:
        raise InvalidRequest(why[r.exit_code])
    if not r.ok:
        raise ProviderError(f"{path}: the sandbox's shell failed ({r.describe()}): "
                            f"{r.stderr.decode(errors='replace').strip()[:200]}")
