"""The shape of a bubblewrap sandbox: what it sees and what it shares, and the preflight that tells
whether bubblewrap can make one on this machine at all."""

from __future__ import annotations

import asyncio
import os

from .host import ETC_FILES, SYSTEM_DIRS, resolve
from .options import LocalOptions


def static_args(opts: LocalOptions, extra: bool = True) -> list[str]:
    """The bwrap arguments every sandbox of a pool shares (the work directory and env come per sandbox)."""
    # --die-with-parent binds bwrap to its parent, the watchdog, never to the controller.
    a = ["--unshare-all", "--share-net", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
         "--hostname", "sandbox", "--clearenv", "--ro-bind", "/usr", "/usr"]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            a += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            a += ["--ro-bind", d, d]
    if extra:
        a += ["--perms", "0755", "--dir", "/etc"]  # made by the agent's uid: the sandbox's must pass through
        for p in ETC_FILES:
            a += ["--ro-bind-try", p, p]
        for p in opts.ro_paths:
            a += ["--ro-bind", p, p]
    # Every place the sandbox's code can write is a tmpfs of its own with a cap (the root is made read-only
    # last, launch.py): a full one fails with ENOSPC inside, and a reset finds and empties each of them.
    scratch = [x for d in ("/tmp", "/var/tmp", "/dev/shm") for x in ("--perms", "1777", "--size", str(opts.tmp_size),
                                                                      "--tmpfs", d)]
    # POSIX message queues get their own mount, where a reset finds them (_agent_reset.py; with the seccomp
    # filter on the code cannot make any, without it nothing else could list them)
    return a + ["--proc", "/proc", "--dev", "/dev", *scratch, "--mqueue", "/dev/mqueue"]


async def try_bwrap(bwrap: str, opts: LocalOptions) -> str:
    """'' when bubblewrap can run a test sandbox here, else why not (as bwrap said it)."""
    true = resolve("true", sandboxed=True)
    if true is None:
        return ""
    proc = await asyncio.create_subprocess_exec(
        bwrap, *static_args(opts, extra=False), "--", true,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "a test sandbox did not finish in 10s"
    return "" if proc.returncode == 0 else (err.decode(errors="replace").strip() or f"exit {proc.returncode}")
