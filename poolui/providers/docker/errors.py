"""How the Docker SDK's failures become poolui's errors, with messages an operator can act on."""

from __future__ import annotations

from ...errors import ProviderError

START_HINT = "start one with `sudo scripts/docker-engine.sh` (installs and starts dockerd) or `sudo dockerd &`"
IMAGE_HINT = (
    "build it with `sudo scripts/docker-engine.sh` (for poolui/busybox:local), `docker build -t {image} .`, "
    "or `docker pull {image}` where a registry is reachable"
)


def is_engine_gone(e: BaseException) -> bool:
    """The engine did not answer (as opposed to answering with an error)."""
    import docker.errors
    import requests.exceptions

    if isinstance(e, docker.errors.APIError | ProviderError):
        return False
    return isinstance(e, requests.exceptions.ConnectionError | docker.errors.DockerException | OSError)


def translate(e: BaseException, who: str, image: str, engine: str, ttl_program: str, doing: str) -> ProviderError:
    """One SDK exception as a poolui error; `who` is "pool 'NAME'", `doing` what was being done."""
    import docker.errors

    if isinstance(e, ProviderError):
        return e
    if isinstance(e, docker.errors.ImageNotFound):
        return ProviderError(f"{who}: image {image!r} not found on the engine at {engine}: "
                             + IMAGE_HINT.format(image=image), reason="image_missing")
    if isinstance(e, docker.errors.APIError):
        msg = str(e.explanation or e)
        if "address already in use" in msg or "port is already allocated" in msg:
            return ProviderError(f"{who}: port conflict while {doing}: {msg}", reason="port_conflict")
        if "executable file not found" in msg and ttl_program in msg:
            msg += (f" (the image needs `{ttl_program}` for the hard TTL: use an image with "
                    "busybox or coreutils, or set docker.ttl_command)")
        return ProviderError(f"{who}: docker engine error while {doing}: {msg}")
    if is_engine_gone(e):
        return ProviderError(f"{who}: no Docker engine answers at {engine} while {doing} ({e}): {START_HINT}",
                             reason="engine_unreachable", transient=True)
    return ProviderError(f"{who}: {doing} failed: {type(e).__name__}: {e}")
