"""The fake Modal API for the tests: a TLS certificate per session and a fresh fake per test.

Registered as a pytest plugin in conftest.py. The `modal` SDK and tests/fake_modal are imported only when
a fixture runs, so a checkout without the modal extra still collects every other test; the fixtures skip
with the reason instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from fake_modal import FakeModal

APP = "poolui-test"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the fake's TLS listeners (the SDK only speaks TLS to a remote API)."""
    pytest.importorskip("modal", reason="the modal extra is not installed (pip install -e '.[modal]')")
    from fake_modal import make_certificate

    try:
        return make_certificate(tmp_path_factory.mktemp("fake-modal-tls"))
    except (RuntimeError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot make a TLS certificate for the fake Modal: {e}")


@pytest.fixture
def fake(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeModal]:
    """A fresh fake Modal, with the SDK pointed at it and nothing of the user's Modal setup leaking in."""
    import modal
    from fake_modal import FakeModal

    server = FakeModal(*certificate).start()
    for name in list(os.environ):
        if name.startswith("MODAL_"):
            monkeypatch.delenv(name)
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "modal.toml"))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    # modal.config read ~/.modal.toml when it was first imported; these tests must not see it.
    monkeypatch.setattr(modal.config, "_user_config", {})
    monkeypatch.setattr(modal.config, "user_config_path", str(tmp_path / "modal.toml"))
    try:
        yield server
    finally:
        web_ports = [sb.web_port for sb in server.sandboxes()]
        server.stop()
        assert not [t.name for t in threading.enumerate() if t.name.startswith("fake-modal")]
        for port in server.ports + web_ports:
            assert refused(port), f"port {port} still answers after the fake stopped"
    assert server.calls.unimplemented == [], f"the SDK made calls the fake lacks: {server.calls.unimplemented}"


def refused(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def pool_table(pool: dict[str, Any] | None = None, **modal_keys: Any) -> dict[str, Any]:
    """A Modal pool's TOML table as data: fast probes, a short API timeout, `pool` and `modal_keys` on top."""
    table: dict[str, Any] = {
        "provider": "modal", "ttl": "60s", "target_ready": 1, "min_ready": 0, "max_ready": 2, "max_total": 4,
        "readiness": {"tcp": True, "timeout": "5s", "interval": "50ms"},
        "health": {"http": "/", "timeout": "2s", "interval": "1s"},
        "modal": {
            "app": APP, "command": ["python3", "-m", "http.server", "{port}"], "port": 8080,
            "api_timeout": "1s", "watch_interval": "50ms", **modal_keys,
        },
    }
    table.update(pool or {})
    return table


async def get(url: str) -> httpx.Response:
    """GET a sandbox's tunnel URL, trusting the fake's certificate (SSL_CERT_FILE)."""
    async with httpx.AsyncClient(verify=httpx.create_ssl_context()) as c:
        return await c.get(url, timeout=5)
