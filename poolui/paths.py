"""Where poolui keeps its state and its token, decided once for the server, the console and the CLI.

State directory: --state-dir, else the pool file's [server] state_dir, else $XDG_STATE_HOME/poolui
(~/.local/state/poolui). Token file: --token-file, else [server] token_file, else STATE_DIR/token.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

TOKEN_FILE_NAME = "token"
TOKEN_ENV = "POOLUI_TOKEN"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "poolui"


def state_dir(explicit: str | os.PathLike[str] | None, configured: str | os.PathLike[str] | None) -> Path:
    """The state directory, absolute: the explicit one, else the pool file's, else the default."""
    chosen = explicit or configured
    return Path(chosen).expanduser().resolve() if chosen else default_state_dir().resolve()


def token_file(explicit: str | os.PathLike[str] | None, configured: str | os.PathLike[str] | None,
               state: Path) -> Path:
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
