"""The agent in a Docker container: the local provider's agent (local/_agent.py, one protocol and one
implementation), so an exec costs a Unix socket round trip instead of the Engine's exec API: about 4 ms
against about 100 ms through the Engine, and under the local agent's own (bench/docker_exec.py).

How it gets in. The agent's modules go into a zip of their sources (not bytecode: the image's python3 may
be another version than the controller's), made once per agent version in the state directory, and bound
read-only into the container at /.poolui/agent.zip. The container's own command becomes the agent
(_agent_boot.py), which starts the image's server as its child. It needs a python3 of 3.9 or newer in the
image (on its PATH); the provider asks the image once (a container that runs `python3 -c ...` and is
removed), per image. An image without one keeps the Engine's exec path (use.py), as does a pool with
`docker.agent = false`; `docker.agent = true` makes a missing python3 an error instead.

How the controller reaches it. A Unix socket the agent binds in a directory of the controller's own
(<state>/docker-agent/<namespace>/<pool>/<container name>, mode 0700, root's), bound into the container
at /.poolui/run: no TCP port, nothing another container can reach, and inside the container nothing but
the agent (root there) can enter the directory. The socket is 0600 besides. So it needs the engine on
this machine, the controller root, and an engine that does not remap the containers' root
(userns-remap, rootless): the container's root must own the directory as the controller does.

Out of the code's reach. The agent is the container's root with the local agent's capabilities (SETUID,
SETGID, KILL, SYS_PTRACE, DAC_OVERRIDE, FOWNER, CHOWN: run commands as the user, end them, see their
environment, empty the work directory at a reset); it is non-dumpable and no_new_privs from its first
line, and drops its inheritable capabilities. The server and every command run as `docker.user`, which
must not be root (default nobody, 65534:65534), with no capability and no_new_privs: they can neither
signal the agent, nor open its /proc/PID/mem or fd, nor connect to its socket
(tests/test_docker_agent.py tries each from inside).

A container whose agent dies ends (the agent is its command's process): the engine reports it dead, the
pool replaces it, and its execs raise SandboxDied; there is no fall-back to the Engine for such a one,
since a dead agent means the container's own command is gone.

Files (put, get, list) go through the agent as well, acting as the container's user, and so does a
reset (_docker_reset.py: every process of the code's uid killed, the server too and started again fresh,
the writable places emptied and checked, SysV IPC removed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..common import NAMESPACE
from ..local.agent_zip import HERE as LOCAL
from ..local.agent_zip import MODULES

HERE = Path(__file__).parent
DIR = "docker-agent"  # under the state directory: the zip, and one socket directory per container
ZIP_AT, RUN_AT = "/.poolui/agent.zip", "/.poolui/run"  # where the container sees them
LABEL = "poolui.agent"  # "1" on a container whose command is the agent
DEFAULT_USER = "65534:65534"
CAPS = ("SETUID", "SETGID", "KILL", "SYS_PTRACE", "DAC_OVERRIDE", "FOWNER", "CHOWN")
MIN_PYTHON = (3, 9)  # os.pidfd_open, Popen(user=..., group=..., extra_groups=...)
_ZIPS: dict[Path, Path] = {}  # state directory -> this version's zip in it
_PYTHON: dict[str, bool] = {}  # image id -> runs python3 >= MIN_PYTHON
CODE = f"import sys; sys.path[:0] = [{ZIP_AT!r}]; import _agent_boot; _agent_boot.main()"


def build_zip(state_dir: Path) -> Path:
    """The zip of the agent's sources for this version, made once in the state directory (and looked for
    once per process)."""
    if (made := _ZIPS.get(state_dir)) is not None and made.exists():
        return made
    _ZIPS[state_dir] = _build_zip(state_dir)
    return _ZIPS[state_dir]


def _build_zip(state_dir: Path) -> Path:
    sources = [LOCAL / f"{m}.py" for m in MODULES] + [HERE / "_agent_boot.py", HERE / "_docker_reset.py"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    top = state_dir / DIR
    path = top / f"agent-{digest}.zip"
    if path.exists():
        return path
    top.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for p in sources:
            z.write(p, p.name)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def make_dir(base: Path, name: str) -> Path:
    """A fresh socket directory for container `name`, 0700, the controller's (root's) alone."""
    d = base / name
    shutil.rmtree(d, ignore_errors=True)  # an earlier attempt's
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    d.mkdir(mode=0o700)
    return d


def stray_dirs(base: Path, live: set[str]) -> list[str]:
    """Names of socket directories whose container is not in `live` (by name)."""
    try:
        return [e.name for e in os.scandir(base) if e.is_dir() and e.name not in live]
    except FileNotFoundError:
        return []


def apply(create: dict[str, Any], host_config: dict[str, Any], prefix_len: int, zip_path: Path, sock_dir: Path,
          user: str | None, workdir: str) -> None:
    """Make a container's create request (spec.container_spec's) one whose command is the agent: the
    server's argv after the agent's, the zip and the socket directory bound in, the container's root for
    the agent with its capabilities, `user` (default nobody) for the server and the commands. The entrypoint
    starts with the TTL's prefix (`prefix_len` words), which stays first."""
    entry = list(create.get("entrypoint") or [])
    prefix, image_entry = entry[:prefix_len], entry[prefix_len:]
    server = image_entry + list(create.get("command") or [])
    create["entrypoint"] = [*prefix, "python3", "-I", "-S", "-B", "-c", CODE, workdir, user or DEFAULT_USER,
                            RUN_AT, *server]
    create["command"] = []
    create["user"] = "0:0"
    create["labels"][LABEL] = "1"  # the spec's own labels, which the Sandbox is made from
    host_config["binds"] = {str(zip_path): {"bind": ZIP_AT, "mode": "ro"},
                            str(sock_dir): {"bind": RUN_AT, "mode": "rw"}}
    host_config["cap_add"] = sorted({*(host_config.get("cap_add") or []), *CAPS})


def root_user(user: str | None) -> bool:
    """`docker.user` names root (the commands would then be the agent's uid)."""
    return user is not None and user.split(":")[0] in ("0", "root")


def has_python(api: Any, image_id: str, namespace: str) -> bool:
    """Whether the image runs `python3` of MIN_PYTHON or newer (a throw-away container, no network, always
    removed: also when it cannot start, which the SDK's run() would leave behind)."""
    import docker.errors

    check = f"import sys; sys.exit(sys.version_info < {MIN_PYTHON!r})"
    cid = None
    try:
        cid = api.create_container(image_id, ["-I", "-S", "-c", check], entrypoint=["python3"], user="0:0",
                                   labels={LABEL: "python-check", NAMESPACE: namespace},
                                   host_config=api.create_host_config(network_mode="none", cap_drop=["ALL"]))["Id"]
        api.start(cid)
        return int(api.wait(cid, timeout=60).get("StatusCode", 1)) == 0
    except docker.errors.APIError:  # "executable file not found": no python3 on its PATH
        return False
    finally:
        if cid is not None:
            try:
                api.remove_container(cid, force=True)
            except docker.errors.APIError:
                pass


class Plan:
    """One pool's use of the agent: whether its containers get one (asked of each image once) and their
    socket directories (made before the container, removed with it, strays swept)."""

    def __init__(self, want: bool | str, user: str | None, engine: str, state_dir: Path, pool: str,
                 namespace: str) -> None:
        import threading

        self.want, self.user, self.state_dir, self.namespace = want, user, state_dir, namespace
        # per namespace and pool, so a sweep never touches another's (pool names are safe path components)
        self.base = state_dir / DIR / re.sub(r"[^a-zA-Z0-9_.-]", "-", namespace)[:64] / pool
        self.why_not = "" if want is not False else "docker.agent = false"
        if want is not False and not self.why_not:
            self.why_not = _machine_lacks(engine) or ("docker.user is root: the code would be the agent's uid"
                                                      if root_user(user) else "")
        self._lock = threading.Lock()
        self._making: set[str] = set()  # names of containers whose directory is made and container not yet listed
        self._remapped: bool | None = None  # the engine maps the containers' root to another uid
        self.on = False  # the last check found the agent possible: the code runs as `user`, not the image's

    def check(self, client: Any, image_id: str) -> str:
        """Why this pool's containers cannot have the agent ("" when they can) for `image_id`; raised as
        ProviderUnavailable when the pool asked for it (docker.agent = true)."""
        why = self.why_not
        if not why and self._remapped is None:
            options = (client.info() or {}).get("SecurityOptions") or []
            self._remapped = any("userns" in o or "rootless" in o for o in options)
        if not why and self._remapped:
            why = ("an engine whose containers' root is the controller's (not userns-remap or rootless: the "
                   "socket's directory is root's)")
        if not why and not self._has_python(client, image_id):
            why = (f"a python3 of {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer on the image's PATH (the agent runs on "
                   "it)")
        self.on = not why
        if why and self.want is True:
            from ...errors import ProviderUnavailable

            raise ProviderUnavailable(f"docker.agent = true needs {why}; set docker.agent = false to run execs "
                                      "through the Engine's exec API")
        return why

    def shield(self, described: dict[str, object]) -> dict[str, object]:
        """The snapshot's shield (network.describe) with who the code runs as beside an agent."""
        if self.on:
            user = (self.user or DEFAULT_USER).split(":")[0]
            described["uid"] = int(user) if user.isdigit() else user
        return described

    def _has_python(self, client: Any, image_id: str) -> bool:
        if image_id not in _PYTHON:  # an image id names its content: the answer holds for every pool
            # two threads may both ask: the same answer
            _PYTHON[image_id] = has_python(client.api, image_id, self.namespace)
        return _PYTHON[image_id]

    @contextlib.contextmanager
    def making(self, client: Any, image_id: str, name: str) -> Iterator[Path | None]:
        """The socket directory for container `name` when it gets the agent (None when it does not), made
        for the while the container is made, and removed when that fails."""
        if self.check(client, image_id):
            yield None
            return
        with self._lock:
            self._making.add(name)
        try:
            yield make_dir(self.base, name)
        except BaseException:
            self.gone(name)
            raise
        finally:
            with self._lock:
                self._making.discard(name)

    def gone(self, name: str) -> None:
        shutil.rmtree(self.base / name.lstrip("/"), ignore_errors=True)

    def socket(self, name: str) -> Path:
        return self.base / name.lstrip("/") / "agent.sock"

    def sweep(self, live: set[str]) -> None:
        """Remove the socket directories of containers that are not in `live` nor being made."""
        with self._lock:
            keep = live | self._making
        for name in stray_dirs(self.base, keep):
            self.gone(name)


def _machine_lacks(engine: str) -> str:
    if not engine.startswith("unix://"):
        return f"the engine on this machine (it is at {engine}; the agent's socket is a directory here)"
    if os.geteuid() != 0:
        return "the controller to run as root (the agent's socket directory is root's, as the container's agent is)"
    return ""
