"""A pool file read whole: the pool file's own tables (poolui.config) and each provider's table (read by
that provider, found through the registry). `load_config` is what library users call."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from . import config
from .providers.registry import REGISTRY

# The embedded default: shipped inside the package, so a non-editable install finds it from any directory.
DEFAULT_CONFIG = Path(str(files("poolui.config").joinpath("local.toml")))
CONFIG_ENV = "POOLUI_CONFIG"


def load_config(path: str | os.PathLike[str] | None = None) -> config.Config:
    """Read and validate a pool file (the bundled local pool when None); ConfigError names the file, pool,
    key, value and what is allowed."""
    return config.read_pool_file(Path(path) if path is not None else DEFAULT_CONFIG, REGISTRY)


def parse_config(data: dict[str, Any], where: str, path: Path | None = None) -> config.Config:
    """A Config from already-parsed TOML data (tests and tools that build pool files in memory)."""
    return config.parse_config(data, where, REGISTRY, path)


def save_pool_sizes(path: Path, pool: str, **sizes: int | None) -> bool:
    """Write new sizes of one pool into its file in place (comments and layout kept), validated before an
    atomic replace; False when the file already said so (then it is not touched)."""
    from .config.edit import save_pool_sizes as save

    return save(path, pool, REGISTRY, **sizes)


def preview_pool_sizes(path: Path, pool: str, **sizes: int | None) -> list[str]:
    """The lines save_pool_sizes would change ("-old", "+new"); ConfigError when the result is not valid."""
    from .config.edit import preview

    return preview(path, pool, REGISTRY, **sizes)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $POOLUI_CONFIG, else the bundled local pool file."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG
