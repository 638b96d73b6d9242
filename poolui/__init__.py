"""poolui: pools of warm sandboxes, handed out in milliseconds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import Config, PoolConfig
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
from .pool_file import load_config

if TYPE_CHECKING:
    from .core.manager import PoolManager

__all__ = [
    "ClaimTimeout", "Config", "ConfigError", "PoolConfig", "PoolDraining", "PoolError", "PoolExhausted",
    "PoolManager", "PoolNotFound", "ProviderError", "SandboxNotFound", "WarmUpTimeout", "load_config",
]


def __getattr__(name: str) -> Any:
    # The engine is imported on first use so that `poolui --headless` starts fast.
    if name == "PoolManager":
        from .core.manager import PoolManager

        return PoolManager
    raise AttributeError(name)
