"""Where sandboxes really run. Each module exposes `parse_options(raw, where)` and `make(pool, ctx)`."""

from __future__ import annotations

import importlib

from ..config import PROVIDERS, PoolConfig
from .base import Provider, ProviderContext


def make_provider(pool: PoolConfig, ctx: ProviderContext) -> Provider:
    module = importlib.import_module(PROVIDERS[pool.provider])
    provider: Provider = module.make(pool, ctx)
    return provider
