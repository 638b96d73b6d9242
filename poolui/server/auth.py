"""The bearer token: where it lives, how it is made, how a request's token is checked.

The token is a secret, so it is never logged, never read from a query string (query strings end up in
access logs, shell history and proxies), and compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from .. import paths
from ..errors import ConfigError
from ..paths import read_token

# Query parameters that look like someone tried to pass a secret in the URL; refused loudly, not ignored.
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "api-key", "apikey", "x-api-key", "x_api_key",
                               "auth", "authorization", "bearer", "key", "secret", "password"})


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token in `path`, made (random, file mode 0600) when the file does not exist yet.

    Returns (token, created). O_EXCL makes two servers starting at once agree on one token.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = read_token(path)
        if existing is None:
            raise ConfigError(f"{path}: the token file is empty; remove it (a new token is then made) "
                              "or write a token into it") from None
        return existing, False
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return token, True


def loose_permissions(path: Path) -> bool:
    """True when others than the owner may read the token file."""
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def server_token(state_dir: Path, token_file: str | os.PathLike[str] | None,
                 env: dict[str, str] | None = None) -> tuple[str, str]:
    """The token a server accepts and where it came from: POOLUI_TOKEN, else the token file (made when absent).

    Returns (token, source) where source is a description safe to print (never the token)."""
    env = dict(os.environ) if env is None else env
    if env.get(paths.TOKEN_ENV):
        return env[paths.TOKEN_ENV].strip(), f"${paths.TOKEN_ENV}"
    path = paths.token_file(token_file, None, state_dir)
    token, created = load_or_create_token(path)
    return token, f"{path} ({'created' if created else 'existing'})"


def bearer_matches(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
