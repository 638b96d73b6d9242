"""The request and answer bodies of the API, as pydantic models (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_WAIT = 3600.0  # longest claim or drain wait one request may ask for


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_Body):
    timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False,
                                  description="seconds to wait for a sandbox; default: the pool's claim_timeout")
    check_health: bool = Field(False, description="probe the sandbox before handing it out")
    claim_key: str | None = Field(None, min_length=1, max_length=200,
                                  description="idempotency key: repeating it returns the same claim")


class ClaimOut(BaseModel):
    id: str
    pool: str
    url: str
    expires_at: float
    warm: bool
    latency: float
    latency_ms: float
    claim_key: str | None = None
    reason: str = ""


class ReleaseOut(BaseModel):
    id: str
    released: bool


class TerminateIn(_Body):
    ids: list[str] = Field(min_length=1, max_length=1000)


class TerminateOut(BaseModel):
    terminated: list[str]


class ResizeIn(_Body):
    target: int | None = Field(None, ge=0, le=100_000)
    min_ready: int | None = Field(None, ge=0, le=100_000)
    max_ready: int | None = Field(None, ge=0, le=100_000)
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
    for status, text in ((401, "missing or wrong bearer token"), (404, "no such pool or sandbox"),
                         (409, "no sandbox can be handed out (exhausted, draining, degraded)"),
                         (413, "request body too large"), (422, "bad request body or value"),
                         (504, "timed out waiting"))
}
