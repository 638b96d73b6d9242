"""The request and answer bodies of the API, as pydantic models (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..bounds import MAX_LEASE, MAX_SIZE, MAX_WAIT, MIN_LEASE
from ..sandbox_io import MAX_OUTPUT_LIMIT


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
    env: dict[str, str] | None = Field(None, description="environment for every exec of this claim (a secret: "
                                       "never stored, logged or shown)")
    files: dict[str, str] | None = Field(None, description="path -> text, written into the work directory first")
    files_base64: dict[str, str] | None = Field(None, description="path -> base64 content, for bytes")


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
    token: str | None = Field(None, description="allows exec, files, renew and release of this sandbox only")


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
    for status, text in ((400, "two Authorization headers; or the pool's provider cannot do this"),
                         (401, "missing or wrong bearer token"),
                         (403, "a claim's token used on another sandbox or an admin verb"),
                         (404, "no such pool, sandbox or file"),
                         (410, "the claim has ended (released, lease expired, terminated)"),
                         (409, "no sandbox can be handed out (exhausted, draining, degraded)"),
                         (413, "request body too large"), (422, "bad request body or value"),
                         (502, "the provider failed (the sandbox ended during the request)"),
                         (504, "timed out waiting"))
}


class ExecIn(_Body):
    argv: list[str] = Field(min_length=1, max_length=256, description='the command, e.g. ["python3", "-c", "print(1)"]')
    env: dict[str, str] | None = Field(None, description="on top of the claim's env")
    cwd: str = Field("", description="relative to the work directory")
    stdin: str = Field("", description="text for the command's stdin")
    stdin_base64: str | None = Field(None, description="bytes for stdin, base64 (instead of stdin)")
    timeout: float | None = Field(None, gt=0, le=MAX_WAIT, allow_inf_nan=False,
                                  description="seconds; then the command and all it started are killed")
    max_output: int | None = Field(None, ge=0, le=MAX_OUTPUT_LIMIT, description="bytes of output streamed at most")


class RunIn(ExecIn):
    files: dict[str, str] | None = Field(None, description="path -> text, written before the command runs")
    files_base64: dict[str, str] | None = Field(None, description="path -> base64 content")
    claim_timeout: float | None = Field(None, ge=0, le=MAX_WAIT, allow_inf_nan=False,
                                        description="seconds to wait for a sandbox")


class FileOut(BaseModel):
    path: str
    size: int
