"""The headless verbs that use a claimed sandbox: exec and run stream the command's output to this
process's stdout and stderr and exit with its exit code; cp copies a file in or out."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Forbidden
from ..sandbox_io import ExecChunk, ExecResult
from .output import UsageError, err, out

if TYPE_CHECKING:
    from ..control import Control

TIMED_OUT = 124  # as coreutils' timeout(1)


async def _pool(client: Control, args: argparse.Namespace) -> str:
    if args.pool:
        return str(args.pool)
    try:
        names = await client.names()
    except Forbidden:
        raise UsageError("with a claim's token, name the pool with --pool") from None
    if len(names) == 1:
        return names[0]
    raise UsageError(f"the server has pools {', '.join(names) or '(none)'}: name one with --pool")


def _command(args: argparse.Namespace) -> list[str]:
    cmd = list(args.cmd)
    if not cmd:
        raise UsageError(f"{args.verb}: give the command after --, e.g. {args.verb} ... -- python3 -c 'print(1)'")
    return cmd


def _env(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    env = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq:
            raise UsageError(f"--env {pair!r}: expected NAME=VALUE")
        env[name] = value
    return env


def _stdin(args: argparse.Namespace) -> bytes:
    return sys.stdin.buffer.read() if args.stdin else b""


async def _show(stream: AsyncIterator[ExecChunk | ExecResult], as_json: bool) -> int:
    """Write the output as it comes; the exit code is the command's (124 on its timeout, 128+N on signal N)."""
    result: ExecResult | None = None
    async for item in stream:
        if as_json:
            d = item.to_dict() if isinstance(item, ExecChunk) else {**item.to_dict(), "done": True}
            sys.stdout.write(json.dumps(d) + "\n")
            sys.stdout.flush()
        elif isinstance(item, ExecChunk):
            target = sys.stdout if item.stream == "stdout" else sys.stderr
            target.buffer.write(item.data)
            target.flush()
        if isinstance(item, ExecResult):
            result = item
    if result is None:
        return 1
    if not result.ok and not as_json:
        err(f"the command ended: {result.describe()}" + (" (output was cut at its cap)" if result.truncated else ""))
    if result.timed_out:
        return TIMED_OUT
    if result.signal is not None:
        return 128 + result.signal
    return result.exit_code if result.exit_code is not None else 1


async def cmd_exec(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool(client, args)
    stream = client.exec(pool, args.id, _command(args), env=_env(args.env), cwd=args.cwd, stdin=_stdin(args),
                         timeout=args.cmd_timeout)
    return await _show(stream, args.json)


async def cmd_run(client: Control, args: argparse.Namespace) -> int:
    pool = await _pool(client, args)
    files: dict[str, bytes | str] = {}
    for spec in args.file or []:
        local, _, remote = spec.partition(":")
        files[remote or Path(local).name] = _read(local, f"--file {spec}")
    stream = client.run(pool, _command(args), env=_env(args.env), files=files, cwd=args.cwd, stdin=_stdin(args),
                        timeout=args.cmd_timeout)
    return await _show(stream, args.json)


async def cmd_cp(client: Control, args: argparse.Namespace) -> int:
    """cp LOCAL ID:PATH uploads, cp ID:PATH LOCAL downloads; '-' is stdin or stdout."""
    src, dst = args.src, args.dst
    pool = await _pool(client, args)
    if ":" in dst and ":" not in src:
        sandbox, _, path = dst.partition(":")
        if args.recursive:
            count = await client.put_tar(pool, sandbox, path, _tar_of(src))
            out(json.dumps({"path": path, "files": count}) if args.json else f"{count} files to {sandbox}:{path}")
            return 0
        data = sys.stdin.buffer.read() if src == "-" else _read(src, "cp")
        size = await client.put_file(pool, sandbox, path, data)
        out(json.dumps({"path": path, "size": size}) if args.json else f"{size} bytes to {sandbox}:{path}")
        return 0
    if ":" in src and ":" not in dst:
        sandbox, _, path = src.partition(":")
        if args.recursive:
            count = _untar(await client.get_tar(pool, sandbox, path), dst)
            err(f"{count} files from {sandbox}:{path or '.'} into {dst}")
            return 0
        data = await client.get_file(pool, sandbox, path)
        if dst == "-":
            sys.stdout.buffer.write(data)
        else:
            _write(dst, data)
            err(f"{len(data)} bytes from {sandbox}:{path} to {dst}")
        return 0
    raise UsageError("cp: one side is ID:PATH in the sandbox, the other a local file (or -)")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"{what}: cannot read {path}: {e.strerror or e}") from None


def _tar_of(directory: str) -> bytes:
    """A local directory as a tar (its regular files and directories; symlinks are not followed)."""
    import io
    import tarfile

    if not Path(directory).is_dir():
        raise UsageError(f"cp -r: {directory} is not a directory")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for p in sorted(Path(directory).rglob("*")):
            if p.is_file() and not p.is_symlink():
                archive.add(p, arcname=str(p.relative_to(directory)), recursive=False)
    return out.getvalue()


def _untar(data: bytes, directory: str) -> int:
    """Unpack into a local directory with tarfile's "data" filter (nothing outside it, no links out)."""
    import io
    import tarfile

    Path(directory).mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        archive.extractall(directory, filter="data")
    return sum(1 for m in members if m.isreg())


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise UsageError(f"cp: cannot write {path}: {e.strerror or e}") from None


def add_use_verbs(verb: object) -> None:
    """The exec, run and cp subcommands (verb: build_parser's helper that makes one)."""
    from ..argtypes import seconds
    from ..bounds import MAX_WAIT

    assert callable(verb)
    for name, help_ in (("exec", "run a command in a claimed sandbox; exits with its exit code"),
                        ("run", "claim a sandbox, run a command in it, release it; exits with its exit code")):
        v = verb(name, help_)
        if name == "exec":
            v.add_argument("id", metavar="ID", help="the claimed sandbox")
        v.add_argument("--env", metavar="NAME=VALUE", action="append", help="environment (repeat for more)")
        v.add_argument("--cwd", default="", help="working directory, relative to the sandbox's work directory")
        v.add_argument("--stdin", action="store_true", help="send this process's stdin to the command")
        v.add_argument("--cmd-timeout", metavar="SECONDS", type=seconds(0.001, MAX_WAIT), default=None,
                       help="kill the command and all it started after this long (default 60)")
        if name == "run":
            v.add_argument("--file", metavar="LOCAL[:PATH]", action="append",
                           help="a file to put into the work directory first (repeat for more)")
        v.epilog = ("The command comes last, after --: "
                    + ("exec ID -- python3 -c 'print(1)'" if name == "exec" else "run -- python3 -c 'print(1)'"))
    cp = verb("cp", "copy a file into (cp LOCAL ID:PATH) or out of (cp ID:PATH LOCAL) a claimed sandbox")
    cp.add_argument("-r", "--recursive", action="store_true", help="a directory (as a tar stream) instead of a file")
    cp.add_argument("src")
    cp.add_argument("dst")
