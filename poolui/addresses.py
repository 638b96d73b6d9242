"""HOST:PORT as people write it (`127.0.0.1:8765`, `[::1]:8765`), parsed once for the pool file, the
server's --listen and the clients that find the server from it."""

from __future__ import annotations

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def split_host_port(text: str) -> tuple[str, int]:
    """(host, port) from HOST:PORT; ValueError says what is allowed. IPv6 hosts may be bracketed."""
    host, sep, port = text.rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError('HOST:PORT with a port from 0 to 65535, e.g. "127.0.0.1:8765"')
    return host, int(port)


def url_of(host: str, port: int, scheme: str = "http") -> str:
    """The URL a client uses for a listening address; a wildcard host is reached on loopback."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
