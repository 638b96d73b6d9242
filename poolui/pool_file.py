"""A pool file read whole: the pool file's own tables (poolui.config) and each provider's table (read by
that provider, found through the registry). `load_config` is what library users call."""

from __future__ import annotations

import contextlib
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from . import config, paths
from .errors import ConfigError
from .providers.registry import REGISTRY

# The embedded default: shipped inside the package, so a non-editable install finds it from any directory.
# The command line never runs it in place (a saved resize would write into the package): see user_config.
DEFAULT_CONFIG = Path(str(files("poolui.config").joinpath("local.toml")))
CONFIG_ENV = "POOLUI_CONFIG"
COPY_NOTE = ("# Your copy of poolui's default pool file (made from {source} on first use). `poolui` with no\n"
             "# --config runs these pools, and a resize saved in the console is written here. Delete this file\n"
             "# to get a fresh copy of the default.\n\n")


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
    """--config, else $POOLUI_CONFIG, else the user's copy of the bundled local pool file (user_config)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return user_config()


def user_config() -> Path:
    """$XDG_CONFIG_HOME/poolui/local.toml (~/.config/poolui), made from the bundled pool file on first use:
    the default pool file of the command line, the user's to edit. ConfigError when it cannot be made."""
    path = paths.config_dir() / DEFAULT_CONFIG.name
    if path.exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(COPY_NOTE.format(source=DEFAULT_CONFIG) + DEFAULT_CONFIG.read_text())
        try:
            os.link(tmp, path)  # never over a copy made meanwhile (by another start, or edited already)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: a rename, which is as atomic
            os.replace(tmp, path)
        tmp.unlink(missing_ok=True)
    except OSError as e:
        with contextlib.suppress(OSError):  # a half-written copy, should writing it have failed
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot make the editable copy of the default pool file there: "
                          f"{e.strerror or e}; set $XDG_CONFIG_HOME to a directory you can write to, "
                          "or name a pool file with --config FILE") from None
    return path
