"""Every error poolui raises on purpose; the server maps them onto HTTP codes and the client back."""

from __future__ import annotations


class PoolError(Exception):
    """Base of poolui's errors. `code` is stable and travels over HTTP."""

    code = "pool_error"
    http_status = 400

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class ConfigError(PoolError):
    """A pool file, a key or a value that is not allowed; the message names where and what is allowed."""

    code = "config_error"
    http_status = 422


class ServerMismatch(ConfigError):
    """The server at a pool file's [server] address runs other pools than that file's: connecting would show
    and change the wrong pools. Raised by the client side only (poolui.connect), never sent over HTTP."""

    code = "server_mismatch"


class InvalidRequest(PoolError):
    code = "invalid_request"
    http_status = 422


class PoolNotFound(PoolError):
    code = "pool_not_found"
    http_status = 404


class SandboxNotFound(PoolError):
    code = "sandbox_not_found"
    http_status = 404


class ClaimEnded(PoolError):
    """The claim is over (released, its lease ran out, terminated): renewing it cannot bring it back."""

    code = "claim_ended"
    http_status = 410


class PoolExhausted(PoolError):
    """No sandbox can be handed out now (on_empty="fail", draining, degraded, max_total reached)."""

    code = "pool_exhausted"
    http_status = 409


class PoolDraining(PoolExhausted):
    code = "pool_draining"


class ClaimTimeout(PoolError):
    code = "claim_timeout"
    http_status = 504


class WarmUpTimeout(PoolError):
    code = "warm_up_timeout"
    http_status = 504


class ProviderError(PoolError):
    """The place sandboxes run in refused or failed (spawn error, engine down, API error).

    `transient`: the cause may pass by itself (an engine or API that does not answer), as opposed to
    bad credentials or a missing program; a pool whose provider is transiently down waits and retries.
    """

    code = "provider_error"
    http_status = 502

    def __init__(self, message: str, *, reason: str | None = None, transient: bool = False) -> None:
        super().__init__(message, reason=reason)
        self.transient = transient


class ReadinessTimeout(ProviderError):
    code = "readiness_timeout"


class SandboxDied(ProviderError):
    code = "sandbox_died"


class ProviderUnavailable(ProviderError):
    """Credentials missing, engine not reachable: nothing can start until the operator acts."""

    code = "provider_unavailable"


class Unauthorized(PoolError):
    code = "unauthorized"
    http_status = 401


class ServerUnreachable(PoolError):
    code = "server_unreachable"
    http_status = 503


class Forbidden(PoolError):
    """A valid token that does not allow this: a claim's token used on another sandbox or an admin verb."""

    code = "forbidden"
    http_status = 403


class FileNotFound(PoolError):
    """A path in a sandbox that names no file."""

    code = "file_not_found"
    http_status = 404


class TooManyExecs(PoolError):
    """The sandbox runs as many execs as its pool allows at once (max_execs): one must end first."""

    code = "too_many_execs"
    http_status = 429


class NotSupported(PoolError):
    """This pool's provider cannot do it (the instant provider has nothing to exec in)."""

    code = "not_supported"
    http_status = 400  # the request, not the server, is at fault: this pool was not made for it


ERRORS_BY_CODE: dict[str, type[PoolError]] = {
    cls.code: cls
    for cls in (
        PoolError, ConfigError, InvalidRequest, PoolNotFound, SandboxNotFound, ClaimEnded, PoolExhausted,
        PoolDraining, ClaimTimeout, WarmUpTimeout, ProviderError, ReadinessTimeout, SandboxDied,
        ProviderUnavailable, Unauthorized, ServerUnreachable, Forbidden, FileNotFound, NotSupported, TooManyExecs,
    )
}
