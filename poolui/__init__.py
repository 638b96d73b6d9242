"""poolui: pools of warm sandboxes, handed out in milliseconds."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    ClaimTimeout,
    ConfigError,
    PoolDraining,
    PoolError,
    PoolExhausted,
    PoolNotFound,
    ProviderError,
    SandboxNotFound,
    WarmUpTimeout,
)

if TYPE_CHECKING:
    from .config import Config, PoolConfig
    from .core.manager import PoolManager
    from .pool_file import load_config

__all__ = [
    "ClaimTimeout", "Config", "ConfigError", "PoolConfig", "PoolDraining", "PoolError", "PoolExhausted",
    "PoolManager", "PoolNotFound", "ProviderError", "SandboxNotFound", "WarmUpTimeout", "load_config",
]

# Imported on first use, so that importing any part of poolui (`poolui --headless check`, which needs
# neither the engine nor the pool file's reader) does not load asyncio, the providers and the config.
_LAZY = {"PoolManager": ".core.manager", "Config": ".config", "PoolConfig": ".config", "load_config": ".pool_file"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
