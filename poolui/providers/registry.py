"""Which providers there are, and the way to each one's option parser and constructor.

A provider is a module (or package) with `parse_options(raw, where)` and `make(pool, ctx)`; it is imported
when a pool file first names it, so reading a file of local pools never imports the Docker or Modal code.
Adding a provider is one entry here plus its package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol, cast

from ..config import PoolConfig
from .base import Provider, ProviderContext


class ProviderModule(Protocol):
    def parse_options(self, raw: dict[str, Any], where: str) -> Any: ...

    def make(self, pool: PoolConfig, ctx: ProviderContext) -> Provider: ...


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    module: str
    needs_command: bool = False  # the pool's own `command` is required
    on_this_machine: bool = False  # its sandboxes run here: the console may run such pools embedded


SPECS: dict[str, ProviderSpec] = {
    s.name: s for s in (
        ProviderSpec("local", "poolui.providers.local", needs_command=True, on_this_machine=True),
        ProviderSpec("docker", "poolui.providers.docker"),
        ProviderSpec("modal", "poolui.providers.modal"),
        # No real sandboxes: benchmarks, the simulator and fault-injection tests.
        ProviderSpec("instant", "poolui.providers.instant", on_this_machine=True),
    )
}


def module(name: str) -> ProviderModule:
    return cast(ProviderModule, importlib.import_module(SPECS[name].module))


class Registry:
    """The providers as the pool file sees them (poolui.config.ProviderTables)."""

    def names(self) -> tuple[str, ...]:
        return tuple(SPECS)

    def needs_command(self, provider: str) -> bool:
        return SPECS[provider].needs_command

    def parse_options(self, provider: str, raw: dict[str, Any], where: str) -> Any:
        return module(provider).parse_options(raw, where)


REGISTRY = Registry()


def make_provider(pool: PoolConfig, ctx: ProviderContext) -> Provider:
    return module(pool.provider).make(pool, ctx)


def runs_here(provider: str) -> bool:
    return SPECS[provider].on_this_machine
