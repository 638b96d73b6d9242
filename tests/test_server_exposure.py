"""Listening beyond loopback: refused without `[server] allow_remote` and TLS, with a message that says
why; with both, the API is HTTPS and a claim with the token works."""

from __future__ import annotations

import os
import select
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fake_modal.web import make_certificate
from server_fixtures import pool_table, sweep, write_pool_file

POOLS = {"p": pool_table("instant", target_ready=1, min_ready=1, max_ready=2, max_total=4)}


def serve(config: Path, state: Path, listen: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLUI_")}
    return subprocess.Popen([sys.executable, "-m", "poolui.cli", "serve", "--config", str(config), "--listen", listen,
                             "--state-dir", str(state)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.parametrize(("server", "says"), [
    ({}, "is not loopback"),
    ({"allow_remote": True}, "needs TLS"),
])
def test_a_non_loopback_listen_is_refused(tmp_path: Path, server: dict[str, object], says: str) -> None:
    config = write_pool_file(tmp_path / "pools.toml", POOLS, **server)
    proc = serve(config, tmp_path / "state", "0.0.0.0:0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"serving" not in out
    assert says in err.decode() and "allow_remote" in err.decode()


def test_half_a_tls_pair_is_a_config_error(tmp_path: Path) -> None:
    config = write_pool_file(tmp_path / "pools.toml", POOLS, tls_cert=str(tmp_path / "c.pem"))
    proc = serve(config, tmp_path / "state", "127.0.0.1:0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "tls_cert and tls_key together" in err.decode()


def test_allowed_remote_with_tls_serves_https(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    config = write_pool_file(tmp_path / "pools.toml", POOLS, allow_remote=True, tls_cert=str(cert), tls_key=str(key))
    proc = serve(config, tmp_path / "state", "0.0.0.0:0")
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode() if ready else ""
        assert "serving https://127.0.0.1:" in line, line
        url = line.split("serving ", 1)[1].split()[0]
        token = (tmp_path / "state" / "token").read_text().strip()
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(cert)), timeout=30) as http:
            assert http.post("/pools/p/claim", json={"timeout": 10}).status_code == 401  # still needs the token
            r = http.post("/pools/p/claim", json={"timeout": 10}, headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https://", "http://") + "/healthz", timeout=10)  # no plain HTTP there
    finally:
        proc.terminate()
        proc.wait(30)
        sweep(tmp_path / "state")
