"""The [pools.NAME.local] table."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...config import TableReader
from ..common import ENV_ALLOWED, ENV_NAME

ISOLATIONS = ("auto", "bubblewrap", "none")
OPTION_KEYS = ("isolation", "cgroups", "env", "ro_paths", "tmp_size", "agent", "user", "group", "agent_user")


@dataclass(frozen=True)
class LocalOptions:
    isolation: str = "auto"  # auto: bubblewrap when bwrap is installed and works, else a plain process
    cgroups: bool = True  # per-sandbox cgroups where writable (limits, reliable kill)
    env: tuple[tuple[str, str], ...] = ()  # extra environment of the sandbox
    ro_paths: tuple[str, ...] = ()  # more host paths shown read-only under bubblewrap
    tmp_size: int = 64 << 20  # bytes of the private /tmp under bubblewrap
    agent: bool = True  # the in-sandbox agent that runs exec and file requests (_agent.py)
    user: str = "nobody"  # who sandboxes run as when the controller is root (a name or a number, never 0)
    group: str = "nogroup"
    agent_user: str = "65533"  # the agent's own uid when the controller is root: nothing else should use it


def parse_options(raw: dict[str, Any], where: str) -> LocalOptions:
    t = TableReader(raw, where)
    d = LocalOptions()
    isolation = t.str_("isolation", d.isolation, ISOLATIONS)
    cgroups = t.bool_("cgroups", d.cgroups)
    env = t.str_map("env", ENV_NAME, ENV_ALLOWED)
    ro_paths = t.get("ro_paths", [])
    if not isinstance(ro_paths, list) or not all(isinstance(p, str) and os.path.isabs(p) for p in ro_paths):
        raise t.error("ro_paths", ro_paths, 'a list of absolute paths, e.g. ["/opt/app"]')
    tmp_size = t.size("tmp_size", d.tmp_size)
    agent = t.bool_("agent", d.agent)
    user = t.str_("user", d.user, nonempty=True)
    group = t.str_("group", d.group, nonempty=True)
    agent_user = t.str_("agent_user", d.agent_user, nonempty=True)
    t.finish(OPTION_KEYS, sort=False)
    return LocalOptions(isolation, cgroups, tuple(sorted(env.items())),
                        tuple(os.path.normpath(p) for p in ro_paths), tmp_size, agent, user, group, agent_user)
