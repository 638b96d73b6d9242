"""Files, kills and resets through a sandbox's own shell, for providers whose only way in is an exec
(Docker, Modal): a POSIX sh in the image is all they need.

Each script checks every path component for a symlink; whatever a symlink might still be raced into
stays inside the sandbox, since the shell runs there. Paths reach the scripts already checked by
sandbox_io.check_path (relative, no '..'), and as arguments, never spliced into the script's text.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..errors import FileNotFound, InvalidRequest, ProviderError
from ..sandbox_io import MAX_STDIN, ExecChunk, ExecRequest, ExecResult, collect, exec_request

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
LIST = WALK + ('[ -L "$2" ] && exit 3; cd "$2" 2>/dev/null || exit 6; find . -type f -print0')
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

    async def list_files(self, sb: Sandbox, path: str) -> list[str]:
        """The regular files under a directory of the work directory ('' for all), relative to it."""
        r = await collect(self.exec(sb, exec_request(["sh", "-c", LIST, "list", f"{path or '.'}/.", path or "."],
                                                     max_output=16 << 20)))
        _check(r, path or ".")
        return sorted(f.removeprefix("./") for f in r.stdout.decode(errors="surrogateescape").split("\0") if f)

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
