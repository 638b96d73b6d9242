"""Which network a Docker pool's containers get, and what that takes on this machine.

- "isolated" (the default where this machine can give it): network_mode "none", so a container has a
  loopback and nothing else; the claim URL is forwarded from the host's side (forward.py).
- "egress": a bridge network of this controller's namespace, with inter-container traffic off (icc), and
  one iptables rule on the host (and its ip6tables twin) that drops every new connection from that bridge
  to the host itself, whichever address of the host it is sent to, and one more (IPv4: IPv6 is off inside)
  in the engine's DOCKER-USER chain that drops what the bridge sends to link-local addresses
  (169.254.0.0/16): a cloud machine's metadata service, with the machine's credentials, answers there.
  Outbound traffic is forwarded and masqueraded by the engine as on any bridge.
- otherwise what `[pools.NAME.docker] network` names ("bridge", "host", "none", a network of your own),
  or "host" from the pool table.

The pool table's `network` and docker.network both say where containers are: a pool sets one or neither.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ...config import PoolConfig
from ...errors import ConfigError, ProviderError, ProviderUnavailable
from ..common import NAMESPACE
from .options import DockerOptions
from .spec import slug

BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
RULE_COMMENT = "poolui: no new connections from egress sandboxes to the host"
LINK_LOCAL = "169.254.0.0/16"  # where a cloud machine's metadata service answers (169.254.169.254)
LINK_LOCAL_COMMENT = "poolui: nothing from egress sandboxes to link-local addresses (cloud metadata)"
OWN = ("isolated", "egress")  # the modes poolui builds; everything else is the engine's own network


def resolve(pool: PoolConfig, opts: DockerOptions, engine: str) -> str:
    """The pool's network: "isolated", "egress", or a Docker network name; ConfigError when the pool file
    says it twice, ProviderUnavailable when it asks for what this machine cannot give."""
    where = f"pool '{pool.name}'"
    explicit = "network" in pool.raw_options
    if pool.network != "auto" and explicit:
        raise ConfigError(
            f'{where}: network = "{pool.network}" and docker.network = "{opts.network}" both say where the '
            'containers are: keep one (network = "isolated" | "egress" | "host" in the pool table, or '
            "docker.network for a Docker network of your own)")
    if pool.network == "host":
        return "host"
    if explicit:
        return opts.network
    want = "isolated" if pool.network == "auto" else pool.network
    missing = what_is_missing(want, engine)
    if not missing:
        return want
    if pool.network == "auto":
        return "bridge"  # the engine's default, as before isolation existed; the shield says so
    raise ProviderUnavailable(
        f'{where}: network = "{want}" needs {missing}; set network = "host", or docker.network = "bridge" '
        "for the engine's default bridge (which reaches the host and the other containers)")


def what_is_missing(mode: str, engine: str) -> str:
    """Why this machine cannot give `mode` ("" when it can)."""
    if not engine.startswith("unix://"):
        return f"the engine on this machine (it is at {engine}; the claim URL and the rules are made here)"
    if os.geteuid() != 0:
        return ("the controller to run as root (to enter each container's network namespace)" if mode == "isolated"
                else "the controller to run as root (to set the host's iptables rule)")
    if mode == "egress":
        if not shutil.which("iptables"):
            return "iptables (apt-get install -y iptables)"
        if not _bridge_nf():
            return "the br_netfilter module (modprobe br_netfilter), without which containers reach each other"
    return ""


def _bridge_nf() -> bool:
    try:
        return BRIDGE_NF.read_text().strip() == "1"
    except OSError:
        return False


def describe(mode: str, opts: DockerOptions, read_only: bool, seccomp: bool) -> dict[str, object]:
    """The snapshot's shield: network, who the code runs as, seccomp, the writable disk's cap."""
    user = (opts.user or "0").split(":")[0]
    return {"network": mode, "uid": int(user) if user.isdigit() else user, "seccomp": seccomp,
            # a writable root filesystem is bounded by the host's disk only
            "disk": opts.tmpfs_size if read_only else None}


def egress_names(namespace: str) -> tuple[str, str]:
    """(network, bridge interface) of a namespace's egress network; an interface name has 15 bytes at most."""
    return f"poolui-{slug(namespace)[:40]}-egress", "pui-" + hashlib.sha256(namespace.encode()).hexdigest()[:11]


def ensure_egress(client: Any, namespace: str) -> str:
    """Make (or find) the namespace's egress network and the host's rules for it; returns its name."""
    import docker.errors

    name, bridge = egress_names(namespace)
    try:
        net = client.api.inspect_network(name)
    except docker.errors.NotFound:
        try:
            client.api.create_network(name, driver="bridge", check_duplicate=True, labels={NAMESPACE: namespace},
                                      options={"com.docker.network.bridge.name": bridge,
                                               "com.docker.network.bridge.enable_icc": "false"})
        except docker.errors.APIError as e:
            if e.status_code != 409:  # made by another controller of this namespace meanwhile: that one
                raise
        net = client.api.inspect_network(name)
    opts = net.get("Options") or {}
    if opts.get("com.docker.network.bridge.enable_icc") != "false" or opts.get(
            "com.docker.network.bridge.name") != bridge:
        raise ProviderError(f"docker network {name!r} exists but is not poolui's egress network (icc must be off, "
                            f"bridge {bridge}): remove it with `docker network rm {name}`")
    for tool in host_firewalls():
        for chain, rule in rules(tool, bridge):
            _iptables(tool, "-I", chain, rule, check_first=True)
    return name


def remove_egress(client: Any, namespace: str) -> None:
    """Remove a namespace's egress network and then its host rules (for teardown: never while a container
    of it may run, for then it would reach the host)."""
    import docker.errors

    name, bridge = egress_names(namespace)
    try:
        client.api.remove_network(name)
    except docker.errors.NotFound:
        pass
    for tool in host_firewalls():
        for chain, rule in rules(tool, bridge):
            while _iptables(tool, "-C", chain, rule):
                _iptables(tool, "-D", chain, rule)


def host_firewalls() -> list[str]:
    """iptables, and ip6tables where there is one (a container has an IPv6 link-local address even on
    a network without IPv6, unless it is turned off: both are done)."""
    return [t for t in ("iptables", "ip6tables") if shutil.which(t)]


def rules(tool: str, bridge: str) -> list[tuple[str, list[str]]]:
    """The host's rules for an egress bridge, (chain, rule): no new connection to the host itself (INPUT),
    and (IPv4) nothing forwarded to link-local addresses, in DOCKER-USER, which the engine keeps first in
    FORWARD (FORWARD itself where the engine made no DOCKER-USER)."""
    out = [("INPUT", ["-i", bridge, "-m", "conntrack", "!", "--ctstate", "ESTABLISHED,RELATED",
                      "-m", "comment", "--comment", RULE_COMMENT, "-j", "DROP"])]
    if tool == "iptables":
        chain = "DOCKER-USER" if _run([tool, "-w", "5", "-S", "DOCKER-USER"]).returncode == 0 else "FORWARD"
        out.append((chain, ["-i", bridge, "-d", LINK_LOCAL, "-m", "comment", "--comment", LINK_LOCAL_COMMENT,
                            "-j", "DROP"]))
    return out


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def _iptables(tool: str, verb: str, chain: str, rule: list[str], check_first: bool = False) -> bool:
    """One verb on one of an egress bridge's rules; True when it succeeded (for -C: the rule exists)."""
    if check_first and _iptables(tool, "-C", chain, rule):
        return True
    r = _run([tool, "-w", "5", verb, chain, *(["1"] if verb == "-I" else []), *rule])
    if r.returncode != 0 and verb in ("-I", "-D"):
        raise ProviderError(f"{tool} {verb} {chain} for bridge {rule[1]} failed: {r.stderr.strip() or r.returncode}")
    return r.returncode == 0
