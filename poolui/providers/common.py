"""What every provider does the same way, written once: the ownership markers, the bounded memory of
sandboxes known to have ended, {port}/{url} templating, free loopback ports, environment names."""

from __future__ import annotations

import random
import re
import socket
import time
from collections import OrderedDict
from typing import Any, TypeVar

from ..errors import ProviderError

T = TypeVar("T")

# The markers that make a sandbox ours (container labels, Modal tags); read back on adoption.
NAMESPACE, POOL, MEMBER = "poolui.namespace", "poolui.pool", "poolui.member"
EXPIRES, REVISION = "poolui.expires_at", "poolui.revision"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # matched from the start
ENV_ALLOWED = 'a table of NAME = "value" strings, e.g. { LANG = "C.UTF-8" }'


def owner_marks(namespace: str, pool: str, member: str, expires_at: float, revision: str) -> dict[str, str]:
    """The markers of one sandbox, as strings."""
    return {NAMESPACE: namespace, POOL: pool, MEMBER: member, EXPIRES: f"{expires_at:.3f}", REVISION: revision}


def fill(argv: tuple[str, ...] | list[str], port: int | str = "", url: str = "") -> list[str]:
    """An argv with {port} and {url} put in."""
    return [a.replace("{port}", str(port)).replace("{url}", url) for a in argv]


def options_of(pool: Any, cls: type[T], parse: Any) -> T:
    """The pool's parsed provider table; parsed here when the pool was made without the registry."""
    opts = pool.options
    if isinstance(opts, cls):
        return opts
    parsed: T = parse(pool.raw_options, f"pool '{pool.name}'.{pool.provider}")
    return parsed


class Ended:
    """Sandboxes known to have ended and how: bounded, so a long-running pool's memory stays flat."""

    def __init__(self, keep: int = 4096) -> None:
        self._how: OrderedDict[str, str] = OrderedDict()
        self._keep = keep

    def note(self, key: str, how: str) -> None:
        self._how[key] = how
        self._how.move_to_end(key)
        while len(self._how) > self._keep:
            self._how.popitem(last=False)

    def setdefault(self, key: str, how: str) -> str:
        if key not in self._how:
            self.note(key, how)
        return self._how[key]

    def get(self, key: str, default: str = "") -> str:
        return self._how.get(key, default)

    def forget(self, key: str) -> None:
        self._how.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._how

    def __getitem__(self, key: str) -> str:
        return self._how[key]

    def __len__(self) -> int:
        return len(self._how)


class PortPicker:
    """Free 127.0.0.1 ports below the ephemeral range, so an outgoing connection (a probe, say) cannot
    take one between the pick and the sandbox's bind; a port handed out is not handed out again for two
    minutes, since its sandbox may not have bound it yet."""

    def __init__(self, hold: float = 120.0) -> None:
        self._recent: dict[int, float] = {}
        self._hold = hold

    def _ephemeral_start(self) -> int:
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 32768

    def pick(self) -> int:
        now = time.monotonic()
        for p in [p for p, t in self._recent.items() if now - t > self._hold]:
            del self._recent[p]
        ephemeral = self._ephemeral_start()
        for _ in range(200):
            port = random.randrange(20000, ephemeral) if ephemeral > 21000 else 0
            if port in self._recent:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                port = s.getsockname()[1]
            self._recent[port] = now
            return port
        raise ProviderError("no free TCP port on 127.0.0.1")
