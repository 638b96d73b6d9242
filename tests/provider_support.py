"""One harness per provider for the conformance suite (tests/test_provider_conformance.py).

A harness knows the three things the protocol leaves to each provider: the pool table that makes a working
sandbox, how to kill one from outside (as an OOM kill, a crashed host or a user would), and whether a second
provider instance on the same namespace can see the first one's sandboxes (adoption after a restart). The
rest of the suite speaks only `poolui.providers.base.Provider`. A provider added to the registry without a
harness here fails `test_every_registered_provider_has_a_harness`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docker_support import HTTPD, IMAGE, PY_IMAGE
from helpers import Exits
from modal_support import pool_table as modal_table

from poolui.pool_file import parse_config
from poolui.providers.base import Provider, ProviderContext, Sandbox
from poolui.providers.registry import make_provider

LOCAL_HTTP = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
FAST_READY = {"http": "/", "timeout": "20s", "interval": "20ms"}


def _local(isolation: str) -> dict[str, Any]:
    return {"provider": "local", "command": LOCAL_HTTP, "local": {"isolation": isolation}, "readiness": FAST_READY}


async def _kill_instant(p: Provider, sb: Sandbox, _request: pytest.FixtureRequest) -> None:
    p.kill_from_outside(sb.member_id)  # type: ignore[attr-defined]  # the instant provider's fault hook


async def _kill_local(_p: Provider, sb: Sandbox, _request: pytest.FixtureRequest) -> None:
    os.kill(sb.ref["pid"], signal.SIGKILL)


async def _kill_docker(_p: Provider, sb: Sandbox, request: pytest.FixtureRequest) -> None:
    engine = request.getfixturevalue("engine")
    await asyncio.to_thread(engine.api.kill, sb.ref["container_id"])


async def _kill_modal(_p: Provider, sb: Sandbox, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("fake").kill(sb.ref["sandbox_id"], exit_code=137)


@dataclass(frozen=True)
class Kind:
    """What the suite needs to know about one provider (see the module docstring)."""

    provider: str
    table: dict[str, Any]
    kill_outside: Callable[[Provider, Sandbox, pytest.FixtureRequest], Awaitable[None]]
    fixtures: tuple[str, ...] = ()  # set up before the harness and so torn down after it
    shared_state: bool = True  # False: sandboxes live in the provider object (instant), nothing to adopt


KINDS: dict[str, Kind] = {
    "instant": Kind("instant", {"provider": "instant"}, _kill_instant, shared_state=False),
    "local-bubblewrap": Kind("local", _local("bubblewrap"), _kill_local),
    "local-none": Kind("local", _local("none"), _kill_local),
    "docker": Kind("docker", {"provider": "docker", "readiness": FAST_READY,
                              "docker": {"image": IMAGE, "command": HTTPD}}, _kill_docker, ("engine", "ns")),
    # the same through the agent in the container (exec, files and resets), as a python image gets by default
    "docker-agent": Kind("docker", {"provider": "docker", "readiness": FAST_READY,
                                    "docker": {"image": PY_IMAGE, "command": HTTPD, "agent": True}},
                         _kill_docker, ("engine", "ns", "docker_agent")),
    "modal": Kind("modal", modal_table(), _kill_modal, ("fake",)),
}


@dataclass
class Harness:
    """Providers of one kind made for one test; `close()` removes every sandbox they can still see."""

    kind: Kind
    request: pytest.FixtureRequest
    state_dir: Path
    namespace: str = field(default_factory=lambda: f"conf-{uuid.uuid4().hex[:10]}")
    exits: dict[str, Exits] = field(default_factory=dict)
    made: list[Provider] = field(default_factory=list)

    async def make(self, namespace: str = "", pool: str = "conf") -> Provider:
        """A checked provider of this kind on namespace (the harness's own by default)."""
        ns = namespace or self.namespace
        table = {"target_ready": 1, "min_ready": 0, "max_ready": 4, "max_total": 8, **self.kind.table}
        cfg = parse_config({"pools": {pool: table}}, "conformance.toml").pools[pool]
        exits = self.exits.setdefault(ns, Exits())
        p = make_provider(cfg, ProviderContext(ns, self.state_dir, exits))
        self.made.append(p)
        await p.check()
        return p

    async def kill_outside(self, p: Provider, sb: Sandbox) -> None:
        """End sb without its provider asking, as a crash or an OOM kill would."""
        await self.kind.kill_outside(p, sb, self.request)

    async def close(self) -> None:
        """Terminate whatever any provider made here still lists, then close them all."""
        for p in self.made:
            try:
                for sb in await p.list_ours():
                    await p.terminate(sb)
            finally:
                await p.close()
