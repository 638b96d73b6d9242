"""What this machine can give local sandboxes, and why not where it cannot: `poolui --headless doctor`."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import _egress_rules as egress_rules
from .host import cgroup_bases, resolve
from .options import LocalOptions
from .shield import _write_filter
from .use import SETPRIV


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str


async def _bwrap_runs(bwrap: str, *args: str) -> str:
    """'' when bubblewrap runs `true` with these arguments, else what it said."""
    true = resolve("true", sandboxed=True) or "/usr/bin/true"
    proc = await asyncio.create_subprocess_exec(
        bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin", *args, "--", true,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, e = await proc.communicate()
    return "" if proc.returncode == 0 else (e.decode(errors="replace").strip() or f"exit {proc.returncode}")


async def findings() -> list[Finding]:
    """One finding per protection: whether this machine provides it, and why not."""
    out = []
    root = os.geteuid() == 0
    bwrap = shutil.which("bwrap")
    err = await _bwrap_runs(bwrap) if bwrap else "bwrap is not installed (apt-get install -y bubblewrap)"
    out.append(Finding("bubblewrap", not err, err or f"{bwrap} makes sandboxes here"))
    out.append(Finding("network isolation", not err, err or "each sandbox gets a network namespace with only a "
                       "loopback; the claim URL is forwarded in from outside it"))
    out.append(Finding("unprivileged uid", root, "sandboxes run as nobody:nogroup" if root else
                       f"the controller is not root: sandboxes run as its uid {os.geteuid()} (never root)"))
    apart = root and os.access(SETPRIV, os.X_OK)
    out.append(Finding("agent apart", apart, "the agent has a uid of its own, which the sandbox's code cannot "
                       "signal or read" if apart else "the agent shares the sandbox's uid (non-dumpable, but the "
                       "code can signal it): " + ("setpriv is missing (util-linux)" if root else
                                                  "only root can map a second uid")))
    with tempfile.TemporaryDirectory() as d:
        try:
            _write_filter(Path(d) / "f.bpf", "doctor")
            out.append(Finding("seccomp", True, "a filter is built with libseccomp and loaded by bubblewrap"))
        except Exception as e:
            out.append(Finding("seccomp", False, str(e)))
    bases = cgroup_bases() if LocalOptions().cgroups else []
    out.append(Finding("cgroups", bool(bases), f"limits and kills through {', '.join(bases)}" if bases else
                       "no writable cgroup here: memory is bounded by an rlimit, kills go by the sandbox's marker"))
    pasta = shutil.which("pasta")
    missing = [tool for tool in egress_rules.NEEDED if egress_rules.which(tool) is None]
    out.append(Finding("egress (pasta)", bool(pasta) and root and not err and not missing,
                       err or (f"{pasta} gives network = \"egress\" sandboxes a way out, never to this machine "
                               "nor to link-local addresses" if root else
                               "pasta joins a sandbox's namespace only as root")
                       if pasta and not missing else
                       f"{', '.join(missing)} missing (apt-get install -y util-linux iptables)" if pasta else
                       "pasta is not installed (apt-get install -y passt)"))
    return out
