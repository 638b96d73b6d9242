"""Pool files: TOML (tomllib) to frozen dataclasses, validated with errors that name the file, the pool,
the key, the value and what is allowed; rewritten atomically.

This package knows no provider: each provider reads its own [pools.NAME.PROVIDER] table, handed to it
through `ProviderTables` (poolui.providers.registry). `poolui.pool_file` puts the two together.
"""

from __future__ import annotations

from .model import ON_EMPTY, PROBE_KINDS, Config, Limits, PoolConfig, ProbeConfig, ReuseConfig, ServerConfig
from .parse import ProviderTables, parse_config, read_pool_file
from .reader import TableReader, parse_size
from .sizes import MAX_SIZE, resized, size_problem, value_problem

__all__ = [
    "MAX_SIZE", "ON_EMPTY", "PROBE_KINDS", "Config", "Limits", "PoolConfig", "ProbeConfig", "ProviderTables",
    "ReuseConfig", "ServerConfig", "TableReader", "parse_config", "parse_size", "read_pool_file", "resized",
    "size_problem", "value_problem",
]
