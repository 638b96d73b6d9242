"""How the modal SDK's failures become poolui's errors, with messages an operator can act on."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from ...errors import PoolError, ProviderError, ProviderUnavailable, ReadinessTimeout, SandboxDied

CREDENTIALS_HINT = (
    "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (from https://modal.com/settings/tokens), "
    "or run `modal token new` to write them to ~/.modal.toml"
)
INSTALL_HINT = "install the SDK with `pip install 'poolui[modal]'` (modal==1.6.4)"


def sdk() -> Any:
    """The modal module, or ProviderUnavailable saying how to install it."""
    try:
        import modal
    except ImportError as e:
        raise ProviderUnavailable(f"the modal provider needs the modal SDK ({e}): {INSTALL_HINT}") from None
    return modal


def is_not_found(e: BaseException) -> bool:
    exc = sdk().exception
    return isinstance(e, exc.NotFoundError)


def is_connection_trouble(e: BaseException) -> bool:
    """Failures after which the SDK client is not worth keeping (its connections may be half dead)."""
    exc = sdk().exception
    return isinstance(e, TimeoutError | exc.ConnectionError | exc.ClientClosed | OSError)


def translate(e: BaseException, what: str, *, readiness: bool = False) -> PoolError:
    """One SDK exception as a poolui error; `what` says which call on which sandbox failed."""
    if isinstance(e, PoolError):
        return e
    exc = sdk().exception
    text = str(e) or type(e).__name__
    if isinstance(e, exc.AuthError | exc.PermissionDeniedError):
        return ProviderUnavailable(f"{what}: Modal refused the credentials ({text}); {CREDENTIALS_HINT}")
    if isinstance(e, exc.SandboxTimeoutError):
        return SandboxDied(f"{what}: the sandbox reached its Modal timeout (exit 124)")
    if isinstance(e, exc.TimeoutError):
        cls = ReadinessTimeout if readiness else ProviderError
        return cls(f"{what}: {text}")
    if isinstance(e, exc.NotFoundError):
        return ProviderError(f"{what}: not found on Modal ({text})")
    if isinstance(e, exc.AlreadyExistsError):
        return ProviderError(f"{what}: already exists on Modal ({text})")
    if isinstance(e, exc.ConnectionError):
        return ProviderError(f"{what}: cannot reach the Modal API ({text})")
    if isinstance(e, exc.ClientClosed):
        # Another call's connection failure closed the shared client while this one was under way.
        return ProviderError(f"{what}: cannot reach the Modal API (the call's client was closed after a "
                             "connection failure; the next call connects again)")
    if isinstance(e, exc.ResourceExhaustedError):
        return ProviderError(f"{what}: Modal says a quota or rate limit is reached ({text})")
    if isinstance(e, exc.ImageBuildError):
        return ProviderError(f"{what}: the image did not build ({text})")
    if isinstance(e, exc.Error):
        return ProviderError(f"{what}: {type(e).__name__}: {text}")
    return ProviderError(f"{what}: {type(e).__name__}: {text}")


async def diagnose(server_url: str, budget: float) -> str:
    """Why the API at server_url gave no answer: one TCP connect, within `budget` seconds.

    The SDK retries silently for about a minute before it says anything, so when poolui gives up first
    this is how the operator still learns whether the host refuses, does not resolve, or stays silent.
    """
    parts = urlsplit(server_url.split(",")[0].strip())
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    start = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(max(0.01, budget)):
            _, writer = await asyncio.open_connection(host, port)
        return f"{host}:{port} accepts connections but the API did not answer"
    except TimeoutError:
        return f"{host}:{port} did not answer a TCP connect within {time.monotonic() - start:.1f}s"
    except socket.gaierror as e:
        return f"{host} does not resolve ({e.strerror or e})"
    except OSError as e:
        return f"{host}:{port}: {os.strerror(e.errno) if e.errno else e}"
    finally:
        if writer is not None:
            writer.close()
