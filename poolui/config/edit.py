"""Writing a pool file back: new sizes of one pool, validated before an atomic replace."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path

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


def edited(path: Path, pool: str, tables: ProviderTables, **sizes: int | None) -> tuple[str, str]:
    """(the file's text now, its text with the new sizes of one pool), validated. Edited in place with
    tomlkit, so comments, order, layout and every other value stay exactly as they were."""
    import tomlkit

    before = path.read_text()
    doc = tomlkit.parse(before)
    pools = doc.get("pools")
    table = pools.get(pool) if isinstance(pools, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no pool '{pool}' to save")
    for key, value in sizes.items():
        if value is not None and table.get(key) != value:
            table[key] = value
    after = tomlkit.dumps(doc)
    parse_config(tomllib.loads(after), str(path), tables, path)
    return before, after


def save_pool_sizes(path: Path, pool: str, tables: ProviderTables, **sizes: int | None) -> bool:
    """Write new sizes of one pool into its file; every other pool, key, comment and table is kept as it
    was. The result is validated before the atomic replace, so a bad value changes nothing; a file already
    saying these sizes is not written at all. True when it was written."""
    before, after = edited(path, pool, tables, **sizes)
    if after == before:
        return False
    atomic_write(path, after.encode())
    return True


def preview(path: Path, pool: str, tables: ProviderTables, **sizes: int | None) -> list[str]:
    """The lines a save would change, as a unified diff without its header (empty: nothing would)."""
    import difflib

    before, after = edited(path, pool, tables, **sizes)
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if not line.startswith(("---", "+++", "@@"))]
