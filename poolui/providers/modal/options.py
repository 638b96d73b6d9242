"""The [pools.NAME.modal] table. Parsing never imports the `modal` SDK: pool files must load fast and on
machines without the `modal` extra."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ... import bounds as b
from ...config import TableReader, parse_size
from ...errors import ConfigError
from ..common import ENV_NAME

KEYS = (
    "app", "environment", "command", "port", "image", "cpu", "memory", "env", "secrets", "region",
    "idle_timeout", "api_timeout", "build_timeout", "watch_interval", "workdir",
)
IMAGE_KEYS = ("registry", "debian_slim", "apt", "pip")
MAX_TIMEOUT = 24 * 3600.0  # Modal's longest sandbox `timeout`
# Modal's rules for object names (apps, secrets) and environment variable names.
_NAME_RE = re.compile(r"^[a-zA-Z0-9._-]{1,64}$")
_PYTHON_RE = re.compile(r"^3\.\d{1,2}$")


@dataclass(frozen=True)
class ImageSpec:
    """registry: an image reference; debian_slim: Modal's base image with this Python ("" = Modal's default)."""

    registry: str = ""
    debian_slim: str = ""
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModalOptions:
    app: str = "poolui"
    environment: str = ""  # "" = the profile's or MODAL_ENVIRONMENT's
    command: tuple[str, ...] = ()  # empty: the pool's own `command`
    port: int = 8080
    image: ImageSpec = ImageSpec()
    cpu: float | None = None
    memory: int | None = None  # MiB, Modal's unit
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    idle_timeout: float | None = None
    api_timeout: float = 10.0
    build_timeout: float = 900.0
    watch_interval: float = 5.0
    # Where exec runs and files go. /tmp is in every image; another directory must exist in the image.
    workdir: str = "/tmp"


def parse_options(raw: dict[str, Any], where: str) -> ModalOptions:
    t = TableReader(raw, where)
    d = ModalOptions()
    app = t.str_("app", d.app)
    if not _NAME_RE.match(app):
        raise t.error("app", app, "a Modal app name: letters, digits, '-', '_' and '.', at most 64 characters")
    environment = t.str_("environment", d.environment)
    if environment and not _NAME_RE.match(environment):
        raise t.error("environment", environment, "a Modal environment name")
    command = t.argv("command") if t.has("command") else ()
    port = t.int_("port", d.port, minimum=1, maximum=65535)
    workdir = t.str_("workdir", d.workdir, nonempty=True)
    if not workdir.startswith("/") or "/../" in f"{workdir}/":
        raise t.error("workdir", workdir, "an absolute path inside the sandbox, with no '..'")
    cpu = None
    if t.has("cpu"):
        cpu = t.float_("cpu", 1.0, 0.125, 64.0)
    memory = None
    if t.has("memory"):
        mem = t.get("memory")
        try:
            # A bare number is MiB, as in Modal's own API; strings carry their unit.
            memory = mem if isinstance(mem, int) and not isinstance(mem, bool) and mem > 0 else None
            if memory is None:
                memory = math.ceil(parse_size(mem) / 1024**2)
        except ValueError:
            raise t.error("memory", mem, 'a size such as "512MiB" or "2GiB", or a number of MiB') from None
    opts = ModalOptions(
        app=app,
        environment=environment,
        command=command,
        port=port,
        image=_image(t),
        cpu=cpu,
        memory=memory,
        env=_env(t),
        secrets=_names(t, "secrets", "a list of Modal secret names, e.g. [\"my-api-keys\"]"),
        region=_names(t, "region", 'a region or a list of regions, e.g. "us-east" or ["us-east", "eu-west"]'),
        idle_timeout=t.duration("idle_timeout", 0.0, minimum=1.0, maximum=b.MAX_TTL) if t.has("idle_timeout") else None,
        api_timeout=t.duration("api_timeout", d.api_timeout, minimum=0.1, maximum=b.MAX_WAIT),
        build_timeout=t.duration("build_timeout", d.build_timeout, minimum=1.0, maximum=b.DAY),
        watch_interval=t.duration("watch_interval", d.watch_interval, minimum=0.05, maximum=b.MAX_INTERVAL),
        workdir=workdir,
    )
    t.finish(KEYS)
    return opts


def _image(t: TableReader) -> ImageSpec:
    if not t.has("image"):
        return ImageSpec()
    value = t.get("image")
    if isinstance(value, str) and value.strip():
        return ImageSpec(registry=value.strip())
    if not isinstance(value, dict):
        raise t.error(
            "image", value, 'a registry image such as "python:3.12-slim", or a table such as '
            '{ debian_slim = "3.12", apt = ["curl"], pip = ["fastapi"] }'
        )
    it = TableReader(value, f"{t.where}.image")
    registry = it.str_("registry", "") if it.has("registry") else ""
    slim = it.get("debian_slim", "")
    if it.has("registry") == it.has("debian_slim"):
        raise ConfigError(
            f"{it.where}: give exactly one of 'registry' (an image reference) or 'debian_slim' (a Python "
            f"version such as \"3.12\")"
        )
    if it.has("registry") and not registry.strip():
        raise it.error("registry", registry, 'an image reference such as "python:3.12-slim"')
    if it.has("debian_slim"):
        if slim is True:
            slim = "default"
        if not isinstance(slim, str) or not (slim == "default" or _PYTHON_RE.match(slim)):
            raise it.error("debian_slim", slim, 'a Python version such as "3.12", or true for Modal\'s default')
    spec = ImageSpec(
        registry=registry.strip(),
        debian_slim=slim if isinstance(slim, str) else "",
        apt=_packages(it, "apt"),
        pip=_packages(it, "pip"),
    )
    it.finish(IMAGE_KEYS)
    return spec


def _packages(t: TableReader, key: str) -> tuple[str, ...]:
    v = t.get(key, [])
    if not isinstance(v, list) or not all(isinstance(p, str) and p.strip() for p in v):
        raise t.error(key, v, f'a list of {key} package names, e.g. ["curl"]')
    return tuple(p.strip() for p in v)


def _env(t: TableReader) -> dict[str, str]:
    return t.str_map("env", ENV_NAME, 'a table of NAME = "value" strings, NAME made of letters, digits and "_"')


def _names(t: TableReader, key: str, allowed: str) -> tuple[str, ...]:
    v = t.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(n, str) and _NAME_RE.match(n) for n in v):
        raise t.error(key, v, allowed)
    return tuple(v)
