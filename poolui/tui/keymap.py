"""The operator's own keys: `[keymap]` in the console's config file, binding id = keys.

    # ~/.config/poolui/console.toml (or the file $POOLUI_CONSOLE_CONFIG names)
    [keymap]
    terminate = "x"          # one key
    faster = "plus,k"        # several, comma-separated

Ids are those `?` lists (every binding has one); an unknown id or an empty key is refused with the list of
what is allowed, so a typo never silently leaves the default in place.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

CONSOLE_CONFIG_ENV = "POOLUI_CONSOLE_CONFIG"


def console_config_path() -> Path:
    """$POOLUI_CONSOLE_CONFIG, else console.toml in $XDG_CONFIG_HOME/poolui (default ~/.config/poolui)."""
    named = os.environ.get(CONSOLE_CONFIG_ENV)
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "poolui" / "console.toml"


def load_keymap(path: Path, known_ids: Iterable[str]) -> dict[str, str]:
    """The `[keymap]` table of `path` ({} when the file does not exist).

    Raises ConfigError naming the file and the bad entry when the file is not TOML, the table is not a
    table, an id is not a console binding, or a key is not a non-empty string."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the console config: {e}") from e
    table = data.get("keymap", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [keymap] must be a table of binding id = \"keys\"")
    known = sorted(set(known_ids))
    out: dict[str, str] = {}
    for binding_id, keys in table.items():
        if binding_id not in known:
            raise ConfigError(f"{path}: [keymap] {binding_id!r} is not a console binding; "
                              f"allowed: {', '.join(known)}")
        if not isinstance(keys, str) or not [k for k in keys.split(",") if k.strip()]:
            raise ConfigError(f"{path}: [keymap] {binding_id} = {keys!r} is not allowed: expected keys as a "
                              "string, e.g. \"x\" or \"ctrl+x,f5\"")
        out[binding_id] = ",".join(k.strip() for k in keys.split(",") if k.strip())
    return out
