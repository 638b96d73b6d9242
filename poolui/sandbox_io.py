"""Using a claimed sandbox: what an exec asks and answers, what a file path into a sandbox may be, and the
caps on both. Shared by the engine, the providers, the server and the client.

An exec streams chunks (stdout and stderr as they come, in order per stream), then one end with how the
command ended. A path is relative to the sandbox's work directory; anything that could name a place
outside it is refused here, before a provider is asked (the provider then refuses symlinks on the way).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .bounds import MAX_WAIT
from .errors import InvalidRequest, ProviderError

MAX_OUTPUT = 1 << 20  # bytes of stdout+stderr one exec streams by default; past it the end says truncated
MAX_OUTPUT_LIMIT = 64 << 20  # the most a caller may ask for
MAX_STDIN = 1 << 20
MAX_FILE = 16 << 20  # one file in or out
MAX_CLAIM_FILES = 64 << 20  # everything put into one claim's sandbox
MAX_ARGV = 256
MAX_ARG = 32 << 10
MAX_ENV = 128
MAX_ENV_VALUE = 32 << 10
MAX_PATH = 1024  # bytes (UTF-8) of a path under the work directory
MAX_NAME = 255  # bytes of one name in it: the kernel's NAME_MAX, so a longer one could never be written
DEFAULT_EXEC_TIMEOUT = 60.0
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@dataclass(frozen=True)
class ExecRequest:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""  # relative to the work directory
    stdin: bytes = b""
    timeout: float = DEFAULT_EXEC_TIMEOUT
    max_output: int = MAX_OUTPUT


@dataclass(frozen=True)
class ExecChunk:
    """Output as it came: stream is "stdout" or "stderr"."""

    stream: str
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.stream, "data": self.data.decode(errors="replace")}


@dataclass
class ExecResult:
    """How the command ended. exit_code is None when a signal ended it (signal says which)."""

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    truncated: bool = False  # output past max_output was dropped
    duration: float = 0.0
    error: str = ""  # the command could not be started (no such program): exit_code is then 127
    stdout: bytes = field(default=b"", repr=False)  # filled by the collecting helpers only
    stderr: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "signal": self.signal, "timed_out": self.timed_out,
                "truncated": self.truncated, "duration": round(self.duration, 6), "error": self.error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExecResult:
        return cls(d.get("exit_code"), d.get("signal"), bool(d.get("timed_out")), bool(d.get("truncated")),
                   float(d.get("duration") or 0.0), str(d.get("error") or ""))

    def describe(self) -> str:
        if self.timed_out:
            return "killed after its timeout"
        if self.error:
            return self.error
        if self.signal is not None:
            return f"killed by signal {self.signal}" + (" (out of memory?)" if self.signal == 9 else "")
        return f"exit code {self.exit_code}"


def check_path(path: str, what: str = "path") -> str:
    """The path, normalised, when it names a place under the work directory; else InvalidRequest."""
    if not isinstance(path, str) or not path:
        raise InvalidRequest(f"{what}: a path relative to the sandbox's work directory is needed, e.g. 'main.py'")
    if len(path.encode(errors="surrogatepass")) > MAX_PATH or "\0" in path:
        raise InvalidRequest(f"{what}: at most {MAX_PATH} bytes (UTF-8) and no NUL byte")
    if path.startswith("/"):
        raise InvalidRequest(f"{what} {path!r} is absolute: give it relative to the sandbox's work directory")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidRequest(f"{what} {path!r} has a '..' part: paths stay under the sandbox's work directory")
    if not parts:
        raise InvalidRequest(f"{what} {path!r} names the work directory itself, not a file in it")
    for part in parts:
        if (n := len(part.encode(errors="surrogatepass"))) > MAX_NAME:
            raise InvalidRequest(f"{what}: the name {part[:32] + '...'!r} is {n} bytes; at most {MAX_NAME} bytes "
                                 f"per name (and {MAX_PATH} per path)")
    return "/".join(parts)


def check_dir(path: str) -> str:
    """A working directory for an exec: '' (the work directory) or a relative path under it."""
    return "" if path in ("", ".") else check_path(path, "cwd")


def check_env(env: dict[str, str] | None, what: str = "env") -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, dict) or len(env) > MAX_ENV:
        raise InvalidRequest(f"{what}: an object of at most {MAX_ENV} NAME: value strings")
    for k, v in env.items():
        if not isinstance(k, str) or not ENV_NAME.fullmatch(k):
            raise InvalidRequest(f"{what}: {k!r} is not a variable name (letters, digits, _; not first a digit)")
        if not isinstance(v, str) or len(v) > MAX_ENV_VALUE or "\0" in v:
            # the value is a secret: never echoed back
            raise InvalidRequest(f"{what}: the value of {k} must be a string of at most {MAX_ENV_VALUE} "
                                 "characters with no NUL byte")
    return tuple(sorted(env.items()))


def exec_request(argv: list[str] | tuple[str, ...], env: dict[str, str] | None = None, cwd: str = "",
                 stdin: bytes | str = b"", timeout: float | None = None, max_output: int | None = None) -> ExecRequest:
    """A checked ExecRequest; InvalidRequest names the first thing that is wrong."""
    if not isinstance(argv, (list, tuple)) or not argv or len(argv) > MAX_ARGV:
        raise InvalidRequest(f"argv: a list of 1 to {MAX_ARGV} strings, e.g. [\"python3\", \"-c\", \"print(1)\"]")
    if not all(isinstance(a, str) and len(a) <= MAX_ARG and "\0" not in a for a in argv) or not argv[0]:
        raise InvalidRequest(f"argv: every item a string of at most {MAX_ARG} characters with no NUL byte, the "
                             "first not empty")
    data = stdin.encode() if isinstance(stdin, str) else stdin
    if not isinstance(data, bytes) or len(data) > MAX_STDIN:
        raise InvalidRequest(f"stdin: at most {MAX_STDIN} bytes")
    t = DEFAULT_EXEC_TIMEOUT if timeout is None else timeout
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= MAX_WAIT:
        raise InvalidRequest(f"timeout = {t!r} is not allowed: expected seconds, more than 0 and at most {MAX_WAIT:g}")
    cap = MAX_OUTPUT if max_output is None else max_output
    if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_OUTPUT_LIMIT:
        raise InvalidRequest(f"max_output = {cap!r} is not allowed: expected bytes from 0 to {MAX_OUTPUT_LIMIT}")
    return ExecRequest(tuple(argv), check_env(env), check_dir(cwd), data, float(t), cap)


def check_files(files: dict[str, bytes | str] | None) -> dict[str, bytes]:
    """Files for a claim, path -> content, within the per-file and per-claim caps."""
    if not files:
        return {}
    if not isinstance(files, dict):
        raise InvalidRequest("files: an object of path: content")
    out: dict[str, bytes] = {}
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        if not isinstance(data, bytes):
            raise InvalidRequest(f"files: the content of {path!r} must be text or bytes")
        if len(data) > MAX_FILE:
            raise InvalidRequest(f"files: {path!r} is {len(data)} bytes; at most {MAX_FILE} per file")
        out[check_path(path, "files")] = data
    total = sum(len(d) for d in out.values())
    if total > MAX_CLAIM_FILES:
        raise InvalidRequest(f"files: {total} bytes in all; at most {MAX_CLAIM_FILES} per claim")
    return out


async def collect(stream: AsyncIterator[ExecChunk | ExecResult]) -> ExecResult:
    """Run an exec stream to its end: the ExecResult with all of stdout and stderr in it."""
    out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    result: ExecResult | None = None
    async for item in stream:
        if isinstance(item, ExecChunk):
            out[item.stream].append(item.data)
        else:
            result = item
    if result is None:
        raise ProviderError("the exec stream ended without saying how the command ended")
    result.stdout, result.stderr = b"".join(out["stdout"]), b"".join(out["stderr"])
    return result
