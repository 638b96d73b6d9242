"""The request and answer bodies of the API, as pydantic models (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..bounds import MAX_LEASE, MAX_SIZE, MAX_WAIT, MIN_LEASE


class _Body(BaseModel):
    # strict: a bool is not a number and "5" is not an int; the 422 names the field.
    model_config = ConfigDict(extra="forbid", strict=True)


class ClaimIn(_Body):
    timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False,
                                  description="seconds to wait for a sandbox; default: the pool's claim_timeout")
    check_health: bool = Field(False, description="probe the sandbox before handing it out")
    claim_key: str | None = Field(None, min_length=1, max_length=200,
                                  description="idempotency key: repeating it returns the same claim")
    lease: float | None = Field(None, ge=MIN_LEASE, le=MAX_LEASE, allow_inf_nan=False,
                                description="seconds the claim lasts unless renewed; default: the pool's claim_lease")


class RenewIn(_Body):
    lease: float | None = Field(None, ge=MIN_LEASE, le=MAX_LEASE, allow_inf_nan=False,
                                description="seconds from now; default: the claim's own lease length")


class LeaseOut(BaseModel):
    id: str
    pool: str
    lease_expires_at: float
    expires_at: float
    claim_key: str | None = None


class ClaimOut(BaseModel):
    id: str
    pool: str
    url: str
    expires_at: float
    warm: bool
    latency: float
    latency_ms: float
    claim_key: str | None = None
    lease_expires_at: float | None = None
    reason: str = ""


class ReleaseOut(BaseModel):
    id: str
    released: bool


class TerminateIn(_Body):
    ids: list[str] = Field(min_length=1, max_length=1000)


class TerminateOut(BaseModel):
    terminated: list[str]


class ResizeIn(_Body):
    target: int | None = Field(None, ge=0, le=MAX_SIZE)
    min_ready: int | None = Field(None, ge=0, le=MAX_SIZE)
    max_ready: int | None = Field(None, ge=0, le=MAX_SIZE)
    persist: bool = Field(False, description="also write the new sizes into the pool file")


class DrainIn(_Body):
    wait: bool = Field(False, description="answer only once the pool has no sandboxes left")
    timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False)


class InfoOut(BaseModel):
    version: str
    pools: list[str]
    config_path: str | None


class ErrorOut(BaseModel):
    error: str
    detail: str
    reason: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in ((400, "two Authorization headers"), (401, "missing or wrong bearer token"),
                         (404, "no such pool or sandbox"),
                         (410, "the claim has ended (released, lease expired, terminated)"),
                         (409, "no sandbox can be handed out (exhausted, draining, degraded)"),
                         (413, "request body too large"), (422, "bad request body or value"),
                         (504, "timed out waiting"))
}
