"""One sandbox as the engine sees it: mutated only by core/pool.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..providers.base import Sandbox
from .model import MemberState, MemberView


@dataclass(eq=False)
class Member:
    """One sandbox as the engine sees it. Mutated only by core/pool.py."""

    id: str
    pool: str
    revision: str
    state: MemberState = MemberState.CREATING
    created_at: float = 0.0  # wall
    ready_at: float | None = None
    claimed_at: float | None = None
    expires_at: float = 0.0  # wall, for people
    expires_mono: float = 0.0  # monotonic, for deadlines
    created_mono: float = 0.0
    sandbox: Sandbox | None = None
    health_ok: bool | None = None
    health_detail: str = ""
    last_probe_at: float | None = None
    claim_key: str | None = None
    lease: float | None = None  # seconds a renew extends the claim by (None: no lease)
    lease_mono: float = float("inf")  # monotonic: the claim ends here unless renewed
    lease_expires_at: float | None = None  # the same in wall time, for people and the store
    reason: str = ""  # why it is terminating / failed
    adopted: bool = False
    doomed: bool = False  # asked to go while its create was still running
    holders: int = 0  # how many claimers hold it: the double hand-out oracle, must stay <= 1
    uses: int = 0  # claims it has served (a reuse pool resets it between them, up to max_uses)
    view: MemberView | None = None  # the last view made of it; dropped on every change (snapshots reuse it)
    # The claim's own: its token (only its hash is stored), env (secrets: memory only, never stored or shown,
    # nor in repr: a member in a log line or a traceback's locals says none of them) and the bytes of files
    # put into it, against the per-claim cap.
    claim_token: str | None = field(default=None, repr=False)
    token_hash: str | None = field(default=None, repr=False)
    next_token: tuple[str, str] | None = field(default=None, repr=False)  # the next claim's, made when ready
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    files_in: int = 0
    execs: int = 0  # execs running in it now, against its pool's max_execs

    @property
    def url(self) -> str:
        return self.sandbox.url if self.sandbox else ""
