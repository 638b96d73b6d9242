"""What belongs to one claim and ends with it: its token, its env and the bytes of files put into it.

The token is handed to the claimer once and kept in memory; only its hash is stored (a restart keeps the
token valid without keeping a secret on disk). The env is a secret: memory only, never stored, logged,
shown or counted, so a claim adopted after a restart runs its execs without it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from .member import Member

if TYPE_CHECKING:
    from .pool import Pool

TOKEN_PREFIX = "pc_"  # a claim's token, told apart at a glance from the admin token


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fresh() -> tuple[str, str]:
    """A new token and its hash."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    return token, token_hash(token)


def prepare(m: Member) -> None:
    """Make m's next claim's token now, as m becomes ready, so a claim does not wait for the random bytes
    and the hash (about a fifth of a warm claim's time, measured). It opens nothing until that claim begins: only
    pool.tokens lets a token in, and it is memory only, used once."""
    m.next_token = fresh()


def begin(pool: Pool, m: Member) -> None:
    """A new claim of m: a fresh token (never the previous claim's), the one made ready for it if any."""
    (m.claim_token, m.token_hash), m.next_token = m.next_token or fresh(), None
    pool.tokens[m.token_hash] = m.id


def adopted(pool: Pool, m: Member) -> None:
    if m.token_hash:
        pool.tokens[m.token_hash] = m.id


def end(pool: Pool, m: Member) -> None:
    """The claim is over: its token stops working, its env and file count go."""
    if m.token_hash:
        pool.tokens.pop(m.token_hash, None)
    m.claim_token = m.token_hash = None
    m.env, m.files_in = (), 0
