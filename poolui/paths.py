"""Where poolui keeps its state, its token and the user's own files, decided once for the server, the console
and the CLI, following the XDG base directories.

State directory: --state-dir, else the pool file's [server] state_dir, else $XDG_STATE_HOME/poolui
(~/.local/state/poolui). Token file: --token-file, else [server] token_file, else STATE_DIR/token.
The user's files (the editable copy of the default pool file, console.toml): $XDG_CONFIG_HOME/poolui
(~/.config/poolui).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

TOKEN_FILE_NAME = "token"
TOKEN_ENV = "POOLUI_TOKEN"


def _xdg(variable: str, *default: str) -> Path:
    # The XDG spec: a relative path in these variables is invalid and ignored, like an unset one (a
    # relative one would put the state wherever the command happened to be started).
    base = os.environ.get(variable, "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), *default)
    return Path(base) / "poolui"


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/poolui, else ~/.local/state/poolui."""
    return _xdg("XDG_STATE_HOME", ".local", "state")


def config_dir() -> Path:
    """$XDG_CONFIG_HOME/poolui, else ~/.config/poolui: the user's own poolui files."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_dir(explicit: str | os.PathLike[str] | None, configured: str | os.PathLike[str] | None) -> Path:
    """The state directory, absolute: the explicit one, else the pool file's, else the default."""
    chosen = explicit or configured
    return Path(chosen).expanduser().resolve() if chosen else default_state_dir().resolve()


def token_file(explicit: str | os.PathLike[str] | None, configured: str | os.PathLike[str] | None,
               state: Path) -> Path:
    """The token file: the explicit one, else the pool file's, else STATE_DIR/token."""
    chosen = explicit or configured
    return Path(chosen).expanduser() if chosen else state / TOKEN_FILE_NAME


def read_token(path: Path) -> str | None:
    """The token in `path`; None when the file is missing or empty (both mean: no token there)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the token file: {e.strerror or e}") from None
    return text or None
