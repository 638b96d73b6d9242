"""The agent's code as one zip of compiled modules, which the watchdog opens (as the controller's user)
and bubblewrap copies into the sandbox (--ro-bind-data). Binding the package directory instead would need
the sandbox's unprivileged uid to reach it, and an install under /root is out of its reach."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
MODULES = ("_agent", "_agent_exec", "_agent_files", "_agent_reset", "_agent_server", "_agent_spawn", "_kill",
           "_spawner")
MOUNT = "/run/poolui/agent.zip"  # where the sandbox sees it


def build(state_dir: Path) -> Path:
    """The zip for this version of the agent's code, made once in the state directory."""
    sources = [HERE / f"{m}.py" for m in MODULES]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    path = state_dir / f"agent-{digest}.zip"
    if path.exists():
        return path
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with zipfile.PyZipFile(str(tmp), "w", optimize=0) as z:
        for p in sources:
            z.writepy(str(p))
    os.replace(tmp, path)
    return path
