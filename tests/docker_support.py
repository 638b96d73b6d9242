"""The Docker engine for the tests: started by scripts/docker-engine.sh when none answers, shared by session.

Registered as a pytest plugin in conftest.py, so every module (provider tests, pool tests, the provider
conformance suite) gets the same `engine`, `ns` and `stoppable_engine` fixtures. The tests that use them
skip only where no engine can run at all (no SDK, or not root and none reachable). Every container a test
makes carries that test's own namespace label and is removed by `ns`, even on failure.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "docker-engine.sh"
IMAGE = "poolui/busybox:local"
HTTPD = ["httpd", "-f", "-p", "{port}", "-h", "/www"]


def client_or_none() -> Any:
    """A Docker client that answered a ping, or None."""
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except Exception:
        return None


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/docker-engine.sh (start the engine, build the image) with no standard input."""
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A Docker client on a running engine that has the test image; skips where no engine can run."""
    pytest.importorskip("docker", reason="the Docker SDK is not installed: pip install -e '.[docker]'")
    import docker.errors

    client = client_or_none()
    if client is None:
        r = run_script()
        if r.returncode == 3:
            pytest.skip(f"no Docker engine can run here: {r.stdout}{r.stderr}".strip())
        assert r.returncode == 0, f"scripts/docker-engine.sh failed (exit {r.returncode}):\n{r.stdout}{r.stderr}"
        client = client_or_none()
        assert client is not None, "scripts/docker-engine.sh succeeded but no engine answers"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        r = run_script("image")
        assert r.returncode == 0, f"building {IMAGE} failed:\n{r.stdout}{r.stderr}"
    yield client
    client.close()


PY_IMAGE = "poolui/python:local"  # busybox with this machine's python3: the Docker agent runs in it


@pytest.fixture
def py_image(engine: Any) -> str:
    """PY_IMAGE, built by scripts/docker-engine.sh if it is missing (skips where it cannot be built)."""
    import docker.errors

    try:
        engine.images.get(PY_IMAGE)
    except docker.errors.ImageNotFound:
        r = run_script("image")
        assert r.returncode == 0, f"building {PY_IMAGE} failed:\n{r.stdout}{r.stderr}"
        try:
            engine.images.get(PY_IMAGE)
        except docker.errors.ImageNotFound:
            pytest.skip(f"{PY_IMAGE} could not be built here (no /usr/bin/python3): {r.stdout}")
    return PY_IMAGE


@pytest.fixture
def docker_agent(py_image: str) -> str:
    """PY_IMAGE where the Docker agent can run in it: the controller must be root (skips elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("the Docker agent needs the controller to be root")
    return py_image


@pytest.fixture
def ns(engine: Any) -> Iterator[str]:
    """A namespace of this test's own; whatever carries it is removed afterwards, pass or fail."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = client_or_none()  # the engine-restart test may have replaced the engine's process
    if client is None:
        return
    for c in client.api.containers(all=True, filters={"label": f"poolui.namespace={name}"}):
        try:
            client.api.remove_container(c["Id"], force=True)
        except Exception:
            pass
    client.close()


async def http_body(url: str) -> tuple[int, str]:
    """Status and body of GET url/ (the busybox image serves a fixed page)."""
    async with httpx.AsyncClient(timeout=5) as c:
        r = await c.get(url + "/")
        return r.status_code, r.text



def our_dockerd_pid() -> int | None:
    """The running engine's pid, only when scripts/docker-engine.sh started it (never a system service's)."""
    try:
        pid = int(Path("/var/run/docker.pid").read_text().strip())
        if pid != int(Path("/var/run/poolui-dockerd.pid").read_text().strip()):
            return None
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


@pytest.fixture
def stoppable_engine(engine: Any) -> Iterator[int]:
    """The local dockerd's pid; the engine is running again after the test, whatever happened."""
    if os.environ.get("POOLUI_DOCKER_NO_ENGINE_RESTART"):
        pytest.skip("POOLUI_DOCKER_NO_ENGINE_RESTART is set: not stopping the shared engine")
    pid = our_dockerd_pid()
    if os.environ.get("DOCKER_HOST") or pid is None or os.geteuid() != 0:
        pytest.skip("the engine was not started by scripts/docker-engine.sh (or DOCKER_HOST is set, or not root): "
                    "not stopping an engine this suite does not own")
    yield pid
    if client_or_none() is None:
        r = run_script("start")
        assert r.returncode == 0, f"could not restart dockerd:\n{r.stdout}{r.stderr}"


