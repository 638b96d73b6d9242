"""What a fake sandbox's encrypted port answers: a small HTTPS server on 127.0.0.1, one per sandbox.

Modal tunnel URLs are always https, so the fake serves TLS with a throwaway self-signed certificate;
tests point SSL_CERT_FILE at it, the way a real deployment trusts Modal's certificates.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key); needs the openssl command."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the fake Modal server needs the `openssl` command to make its TLS certificate")
    cert, key = directory / "fake-modal-cert.pem", directory / "fake-modal-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


class _Handler(BaseHTTPRequestHandler):
    server: SandboxWeb

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status = self.server.status()
        body = f"{self.server.name} {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class SandboxWeb(ThreadingHTTPServer):
    """Serves GET on every path with the status `status()` gives (200 once ready, 503 before)."""

    daemon_threads = True

    def __init__(self, name: str, tls: ssl.SSLContext, status: Callable[[], int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name
        self.status = status
        # The handshake then happens in the request's thread, so a silent client cannot stall accept().
        self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.port: int = self.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-modal-web-{name}", daemon=True
        )
        self._thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-handshake are normal here

    def stop(self) -> None:
        """Blocking: the port refuses connections once this returns."""
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx
