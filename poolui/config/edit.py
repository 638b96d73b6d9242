"""Writing a pool file back: new sizes of one pool, validated before an atomic replace."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

import tomli_w

from ..errors import ConfigError
from .parse import ProviderTables, parse_config


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step (a crash leaves the old file or the new one, never half)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_pool_sizes(path: Path, pool: str, tables: ProviderTables, **sizes: int | None) -> None:
    """Write new sizes of one pool into its file; every other pool, key and table is kept as it was.

    The file is re-read and the result validated before the atomic replace, so a bad value changes nothing.
    """
    data = tomllib.loads(path.read_text())
    table = data.get("pools", {}).get(pool)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no pool '{pool}' to save")
    for key, value in sizes.items():
        if value is not None:
            table[key] = value
    parse_config(data, str(path), tables, path)
    atomic_write(path, tomli_w.dumps(data).encode())
