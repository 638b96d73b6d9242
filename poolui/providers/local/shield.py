"""What protects a local sandbox beyond bubblewrap's namespaces: its own network namespace (the claim
URL forwarded into it), an unprivileged uid when the controller is root, a seccomp filter, and a
size-limited tmpfs as its work directory. Decided once per pool, from the pool file and what this machine
can do; `describe()` is what the snapshot and the console show.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...config import PoolConfig
from ...errors import ProviderUnavailable
from . import _egress_rules as egress_rules
from .options import LocalOptions
from .use import SETPRIV

DISK_DEFAULT = 512 << 20  # bytes of the work directory's tmpfs when limits.disk is not set
SECCOMP_FD = 5  # where the watchdog puts the filter for bubblewrap's --seccomp

# Denied with EPERM, after Docker's default profile: reaching other processes, the kernel's own state and
# the clock, mounts and new namespaces (an escape's usual first step), and kernel attack surface.
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "unshare", "setns", "chroot",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm", "lookup_dcookie",
    "open_by_handle_at", "name_to_handle_at", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "personality", "uselib", "nfsservctl",
    # POSIX message queues live in the IPC namespace with no file to find them by: a reset could not
    # see what one claim left for the next, so they cannot be made at all.
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
)
AF_VSOCK = 40
CLONE_NS = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000)


@dataclass(frozen=True)
class Shield:
    network: str  # isolated | egress | host
    uid: int | None  # who the sandbox runs as on the host (None: the controller's own uid)
    gid: int | None
    seccomp: Path | None  # the BPF program, or None for no filter
    disk: int | None  # the work directory's tmpfs size; None: a directory on the controller's disk
    pasta: str | None = None  # network = "egress": the pasta that gives the sandbox its way out
    agent_uid: int | None = None  # the agent's own host uid and gid, out of the sandbox code's reach
    agent_gid: int | None = None  # (_userns.py); None: the agent runs as the sandbox's uid, non-dumpable

    def describe(self) -> dict[str, object]:
        """For snapshots and the console: what protects this pool's sandboxes."""
        return {"network": self.network, "uid": os.geteuid() if self.uid is None else self.uid,
                "seccomp": self.seccomp is not None, "disk": self.disk}


def decide(pool: PoolConfig, opts: LocalOptions, bwrap: bool, agent: bool, state_dir: Path) -> Shield:
    """The pool's shield on this machine; ProviderUnavailable when the pool asks for what cannot be had."""
    where = f"pool '{pool.name}'"
    network = pool.network
    if network == "auto":
        network = "isolated" if bwrap and agent else "host"
    if network in ("isolated", "egress") and not (bwrap and agent):
        why = "bubblewrap (not installed, or it cannot run here)" if not bwrap else "the agent (agent = false)"
        raise ProviderUnavailable(f'{where}: network = "{network}" needs {why}; set network = "host" to run '
                                  "without network isolation")
    pasta = _pasta(where) if network == "egress" else None
    uid = gid = auid = agid = None
    if os.geteuid() == 0 and bwrap:  # a plain process runs as the controller: it has no root of its own
        uid, gid = _ids(opts, where)
        if agent and os.access(SETPRIV, os.X_OK):
            auid, agid = _agent_ids(opts, where, uid)
    seccomp = None
    if pool.seccomp and bwrap:
        seccomp = state_dir / "seccomp.bpf"
        _write_filter(seccomp, where)
    disk = (pool.limits.disk or DISK_DEFAULT) if bwrap else None
    return Shield(network, uid, gid, seccomp, disk, pasta, auid, agid)


def _pasta(where: str) -> str:
    """pasta, for egress: it must be installed, and joining a namespace it did not make takes root."""
    path = shutil.which("pasta")
    if not path:
        raise ProviderUnavailable(f'{where}: network = "egress" needs pasta (apt-get install -y passt); use '
                                  '"isolated" (no network but the claim URL) or "host"')
    if os.geteuid() != 0:
        raise ProviderUnavailable(f'{where}: network = "egress" needs the controller to run as root (pasta '
                                  'joins each sandbox\'s network namespace); use "isolated" or "host"')
    missing = [tool for tool in egress_rules.NEEDED if egress_rules.which(tool) is None]
    if missing:  # the sandbox's own firewall (_egress_rules.py) is set with them
        raise ProviderUnavailable(f'{where}: network = "egress" needs {", ".join(missing)} (apt-get install -y '
                                  'util-linux iptables); use "isolated" or "host"')
    return path


def _ids(opts: LocalOptions, where: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(opts.user).pw_uid if not opts.user.isdigit() else int(opts.user)
        gid = grp.getgrnam(opts.group).gr_gid if not opts.group.isdigit() else int(opts.group)
    except KeyError as e:
        raise ProviderUnavailable(f"{where}: no such user or group on this machine: {e.args[0]}") from None
    if uid == 0 or gid == 0:
        raise ProviderUnavailable(f"{where}: sandboxes may not run as root (user or group 0)")
    return uid, gid


def _agent_ids(opts: LocalOptions, where: str, sandbox_uid: int) -> tuple[int, int]:
    """The agent's host uid and gid: a number nothing else on the host should run as (it owns the
    sandbox's user namespace), never root, never the sandbox's own."""
    try:
        auid = pwd.getpwnam(opts.agent_user).pw_uid if not opts.agent_user.isdigit() else int(opts.agent_user)
    except KeyError:
        raise ProviderUnavailable(f"{where}: no such user on this machine: {opts.agent_user} "
                                  "([pools.NAME.local] agent_user)") from None
    if auid in (0, sandbox_uid):
        raise ProviderUnavailable(f"{where}: agent_user {opts.agent_user} may be neither root nor the sandbox's "
                                  "own user: the agent must be out of the sandbox code's reach")
    return auid, auid


def _write_filter(path: Path, where: str) -> None:
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:  # OSError: libseccomp.so.2 is missing
        raise ProviderUnavailable(f"{where}: seccomp needs pyseccomp and libseccomp ({e}); install them, or "
                                  "set seccomp = false") from None
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a syscall on this architecture
    for flag in CLONE_NS:  # clone that makes a namespace; clone3 hides its flags, so libc falls back to clone
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    # vsock is not in any network namespace: it would be a way to the hypervisor from an isolated sandbox.
    f.add_rule(sc.ERRNO(errno.EPERM), "socket", sc.Arg(0, sc.EQ, AF_VSOCK))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        f.export_bpf(out)
    os.replace(tmp, path)
