"""Local sandboxes: one process tree per sandbox on this machine, under bubblewrap when it is installed.

    controller --posix_spawn, own session--> watchdog (_watchdog.py)
                                              └─ fork: join cgroups, setsid, exec
                                                   bwrap --die-with-parent ... -- COMMAND   ("bubblewrap")
                                                   COMMAND                                  ("plain process")

The watchdog, not the controller, owns each sandbox: it enforces the hard TTL, kills the whole tree
(cgroup.kill, the pid namespace, the process group) and cleans up. Nothing is tied to the controller's
life, so a crashed controller's sandboxes keep running and the next one adopts them: list_ours() finds
watchdogs by the marker in their argv (namespace, pool, member, port, expiry).

Under bubblewrap a sandbox sees a read-only /usr (with the /bin, /lib... links and a few /etc files), a
private /tmp tmpfs and its own work directory as /work (cwd and HOME); it has its own pid, ipc, uts, user
and cgroup namespaces, the host network (so 127.0.0.1:PORT is reachable), no capabilities and a cleared
environment. The controller's state directory (database, token file) is not bound, so it cannot be read.

As a plain process (no bwrap, or isolation = "none") the command runs as the controller's user on the
controller's filesystem: it CAN read the state directory, including the SQLite file and any token file
kept there. Only use it for trusted commands. Memory and pid limits still apply through cgroups; where
cgroups are not writable, memory falls back to RLIMIT_AS and pids are not limited (RLIMIT_NPROC means
nothing to root).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import PoolConfig, TableReader
from ..errors import ConfigError, ProviderError, ProviderUnavailable, SandboxDied
from ..probes import http_get, poll_until_ready, run_exec, tcp_connect
from . import _watchdog as wd
from .base import ProbeResult, ProviderContext, Sandbox

log = logging.getLogger(__name__)

ISOLATIONS = ("auto", "bubblewrap", "none")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_FILES = (
    "/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
    "/etc/host.conf", "/etc/gai.conf", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group",
    "/etc/localtime", "/etc/mime.types", "/etc/protocols", "/etc/services", "/etc/ld.so.cache",
    "/etc/ld.so.conf", "/etc/ld.so.conf.d",
)
# Imported rather than run as a script, so its cached bytecode is used (compiling it costs ~2 ms a start).
WATCHDOG_CODE = (f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}]; import _watchdog; "
                 "_watchdog.run()")
# The system interpreter starts in ~10 ms; a pyenv shim on PATH would add ~50 ms to every start.
PYTHON = next((p for p in ("/usr/bin/python3", "/bin/python3") if os.access(p, os.X_OK)), sys.executable)
_PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # matched from the start


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class LocalOptions:
    """[pools.NAME.local]"""

    isolation: str = "auto"  # auto: bubblewrap when bwrap is installed and works, else a plain process
    cgroups: bool = True  # per-sandbox cgroups where writable (limits, reliable kill)
    env: tuple[tuple[str, str], ...] = ()  # extra environment of the sandbox
    ro_paths: tuple[str, ...] = ()  # more host paths shown read-only under bubblewrap
    tmp_size: int = 64 << 20  # bytes of the private /tmp under bubblewrap


OPTION_KEYS = ("isolation", "cgroups", "env", "ro_paths", "tmp_size")


def parse_options(raw: dict[str, Any], where: str) -> LocalOptions:
    for key, value in raw.items():
        if key not in OPTION_KEYS:
            raise ConfigError(f"{where}: unknown key '{key}' = {value!r}; allowed keys: {', '.join(OPTION_KEYS)}")
    t = TableReader(raw, where)
    d = LocalOptions()
    isolation = t.str_("isolation", d.isolation, ISOLATIONS)
    cgroups = t.bool_("cgroups", d.cgroups)
    env = t.str_map("env", _ENV_NAME, 'a table of NAME = "value" strings, e.g. {LANG = "C.UTF-8"}')
    ro_paths = t.get("ro_paths", [])
    if not isinstance(ro_paths, list) or not all(isinstance(p, str) and os.path.isabs(p) for p in ro_paths):
        raise t.error("ro_paths", ro_paths, 'a list of absolute paths, e.g. ["/opt/app"]')
    tmp_size = t.size("tmp_size", d.tmp_size)
    return LocalOptions(isolation, cgroups, tuple(sorted(env.items())),
                        tuple(os.path.normpath(p) for p in ro_paths), tmp_size)


def make(pool: PoolConfig, ctx: ProviderContext) -> LocalProvider:
    return LocalProvider(pool, ctx)


# ---------------------------------------------------------------- host facts


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


BOOT_ID = _boot_id()  # with pid + start time, names one process for good (start times restart at boot)


def _ref_alive(ref: dict[str, Any], pid_key: str, start_key: str) -> bool:
    pid, start = ref.get(pid_key), ref.get(start_key)
    return (ref.get("boot_id") == BOOT_ID and isinstance(pid, int) and isinstance(start, int)
            and wd.is_alive(pid, start))


def _cgroup_bases() -> list[str]:
    """This process's own cgroup in the hierarchies a sandbox uses (v1 memory and pids, and v2 for
    cgroup.kill), where writable. Sandboxes nest under it, so limits set above still apply."""
    mounts: dict[str, tuple[str, str]] = {}
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                root, point = pre.split()[3:5]
                fstype, _, opts = post.split()[:3]
                if fstype == "cgroup2":
                    mounts.setdefault("", (point, root))
                elif fstype == "cgroup":
                    for c in ("memory", "pids"):
                        if c in opts.split(","):
                            mounts.setdefault(c, (point, root))
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
    except (OSError, ValueError):
        return []
    bases = []
    for _, controllers, path in own:
        for key in controllers.split(",") if controllers else [""]:
            if key in mounts:
                point, root = mounts.pop(key)
                rel = path[len(root):] if root != "/" and path.startswith(root) else path
                base = os.path.normpath(point + "/" + rel)
                if os.access(base, os.W_OK):
                    bases.append(base)
    return bases


_recent_ports: dict[int, float] = {}  # handed out but maybe not bound yet; shared by every pool


def _free_port() -> int:
    """A free 127.0.0.1 port below the ephemeral range, so an outgoing connection (a probe, say) cannot
    take it between now and the sandbox's bind."""
    now = time.monotonic()
    for p in [p for p, t in _recent_ports.items() if now - t > 120]:
        del _recent_ports[p]
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _ in range(200):
        port = random.randrange(20000, ephemeral) if ephemeral > 21000 else 0
        if port in _recent_ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        _recent_ports[port] = now
        return port
    raise ProviderError("no free TCP port on 127.0.0.1")


def _resolve(name: str, sandboxed: bool) -> str | None:
    """An absolute path for argv[0]: never a shim on the controller's PATH for python, and under bubblewrap
    only what the sandbox can see."""
    if "/" in name:
        return name if os.path.isabs(name) and os.access(name, os.X_OK) else None
    if _PYTHON_NAME.fullmatch(name):
        for p in (f"/usr/bin/{name}", f"/bin/{name}") + (("/usr/bin/python3",) if name == "python" else ()):
            if os.access(p, os.X_OK):
                return p
    return shutil.which(name, path=SANDBOX_PATH if sandboxed else None)


def _under(path: str, roots: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r.rstrip("/") + "/") for r in map(os.path.realpath, roots))


# ---------------------------------------------------------------- one watchdog


class _Watch:
    """One watchdog as the controller sees it: a pidfd for its exit and, when we started it, its report pipe."""

    def __init__(self, member_id: str, pid: int, pidfd: int, out_fd: int | None,
                 on_end: Callable[[_Watch], None]) -> None:
        self.member_id, self.pid, self.pidfd, self.out_fd = member_id, pid, pidfd, out_fd
        self.own = out_fd is not None  # we spawned it, so we reap it
        self.on_end = on_end
        self.loop = asyncio.get_running_loop()
        self.head: bytes | None = None  # the first line: "started ..." or "failed ..."
        self.rest = bytearray()
        self.got_head = asyncio.Event()
        self.ended = asyncio.Event()
        self.started = self.terminating = False
        self.loop.add_reader(pidfd, self._exited)
        if out_fd is not None:
            os.set_blocking(out_fd, False)
            self.loop.add_reader(out_fd, self._read)

    def _take(self, data: bytes) -> None:
        self.rest += data
        if self.head is None and b"\n" in self.rest:
            head, _, rest = bytes(self.rest).partition(b"\n")
            self.head, self.rest = head, bytearray(rest)
            self.got_head.set()
        if len(self.rest) > 16384:
            del self.rest[:-16384]

    def _read(self) -> bool:
        assert self.out_fd is not None
        try:
            data = os.read(self.out_fd, 65536)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data:
            self._take(data)
            return True
        self._close_out()
        return False

    def _close_out(self) -> None:
        if self.out_fd is not None:
            self.loop.remove_reader(self.out_fd)
            os.close(self.out_fd)
            self.out_fd = None

    def _exited(self) -> None:
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        if self.own:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
        while self.out_fd is not None and self._read():
            pass  # everything it wrote is in the pipe now
        self._close_out()
        self.got_head.set()
        self.ended.set()
        self.on_end(self)

    def signal(self, sig: int) -> None:
        if self.pidfd >= 0:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def close(self) -> None:
        """Stop watching; the watchdog and its sandbox go on."""
        self._close_out()
        if self.pidfd >= 0:
            self.loop.remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1

    def describe(self) -> str:
        """Why it ended, for people: the status and the tail of the sandbox's output."""
        header, _, tail = bytes(self.rest).partition(b"\n")
        parts = header.decode(errors="replace").split("\t")
        if parts[0] != "ended":
            text = bytes(self.rest).decode(errors="replace").strip()[-500:]
            return f"its watchdog ended ({text})" if text else "its watchdog ended"
        reason, status = (parts + ["", ""])[1:3]
        what = {"ttl": "killed at its hard TTL", "terminated": "terminated"}.get(reason, status)
        out = tail.decode(errors="replace").strip()
        return what + (f"; last output: {out[-500:]}" if out else "")


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


# ---------------------------------------------------------------- the provider


class LocalProvider:
    kind = "local"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext) -> None:
        self.pool = pool
        self.ctx = ctx
        self.opts = pool.options if isinstance(pool.options, LocalOptions) else LocalOptions()
        self._bwrap = shutil.which("bwrap") if self.opts.isolation != "none" else None
        self._use_bwrap = self._bwrap is not None  # check() turns it off in auto mode when bwrap cannot run
        self._ns = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.namespace) or "_"
        self._program: str | None = None
        self._bases: list[str] | None = None
        self._static: list[str] = []
        self._watches: dict[str, _Watch] = {}
        self._starting: set[str] = set()
        self._ended: OrderedDict[str, str] = OrderedDict()  # member -> how it ended (bounded)

    @property
    def isolation(self) -> str:
        return "bubblewrap" if self._use_bwrap else "plain process"

    # ------------------------------------------------------------ preparing

    def _where(self) -> str:
        return f"pool '{self.pool.name}'"

    def _cgroup_bases(self) -> list[str]:
        if self._bases is None:
            self._bases = _cgroup_bases() if self.opts.cgroups else []
        return self._bases

    def _prepare(self) -> str:
        """Resolve the command's program and fix the sandbox's shape once; ProviderUnavailable says why not."""
        if self._program is not None:
            return self._program
        where = self._where()
        if self.opts.isolation == "bubblewrap" and not self._bwrap:
            raise ProviderUnavailable(
                f'{where}: isolation = "bubblewrap" but bwrap is not installed; install it with '
                f'`apt-get install -y bubblewrap`, or set isolation = "auto" or "none" in '
                f"[pools.{self.pool.name}.local]")
        if not self.pool.command:
            raise ProviderUnavailable(f"{where}: no command to run")
        name = self.pool.command[0]
        program = _resolve(name, self._use_bwrap)
        visible = ["/usr", *SYSTEM_DIRS, *self.opts.ro_paths]
        if program is None:
            raise ProviderUnavailable(
                f"{where}: the command's program {name!r} was not found "
                + (f"in {SANDBOX_PATH} (all a bubblewrap sandbox can see); install it there, give an "
                   "absolute path and add its directory to ro_paths" if self._use_bwrap
                   else "on PATH; install it or give an absolute path"))
        if self._use_bwrap and not _under(program, visible):
            raise ProviderUnavailable(
                f"{where}: the command's program {program} is outside what a bubblewrap sandbox can see "
                f"(/usr and ro_paths); add its directory to ro_paths in [pools.{self.pool.name}.local]")
        state = str(self.ctx.state_dir.resolve())
        for p in self.opts.ro_paths:
            if not os.path.exists(p):
                raise ProviderUnavailable(f"{where}: ro_paths entry {p} does not exist")
            if _under(p, [state]) or _under(state, [p]):
                raise ProviderUnavailable(
                    f"{where}: ro_paths entry {p} would show the controller's state directory {state} "
                    "to sandboxes; remove it")
        if self._use_bwrap:
            self._static = self._bwrap_static()
        self._program = program
        return program

    def _bwrap_static(self, extra: bool = True) -> list[str]:
        # --die-with-parent binds bwrap to its parent, the watchdog, never to the controller.
        a = ["--unshare-all", "--share-net", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             "--hostname", "sandbox", "--clearenv", "--ro-bind", "/usr", "/usr"]
        for d in SYSTEM_DIRS:
            if os.path.islink(d):
                a += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                a += ["--ro-bind", d, d]
        if extra:
            for p in ETC_FILES:
                a += ["--ro-bind-try", p, p]
            for p in self.opts.ro_paths:
                a += ["--ro-bind", p, p]
        return a + ["--proc", "/proc", "--dev", "/dev", "--size", str(self.opts.tmp_size), "--tmpfs", "/tmp"]

    async def check(self) -> None:
        if self._use_bwrap and self._bwrap:
            err = await self._try_bwrap(self._bwrap)
            if err and self.opts.isolation == "bubblewrap":
                raise ProviderUnavailable(f"{self._where()}: bubblewrap cannot create a sandbox here: {err}")
            if err:
                log.warning("%s: bubblewrap does not work here (%s); sandboxes run as plain processes",
                            self._where(), err)
                self._use_bwrap = False
                self._program = None
        self._prepare()
        try:
            (self.ctx.state_dir / "sandboxes").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ProviderUnavailable(f"{self._where()}: cannot create sandbox directories in "
                                      f"{self.ctx.state_dir}: {e.strerror or e}") from None

    async def _try_bwrap(self, bwrap: str) -> str:
        true = _resolve("true", sandboxed=True)
        if true is None:
            return ""
        proc = await asyncio.create_subprocess_exec(
            bwrap, *self._bwrap_static(extra=False), "--", true,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(10):
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return "a test sandbox did not finish in 10s"
        return "" if proc.returncode == 0 else (err.decode(errors="replace").strip() or f"exit {proc.returncode}")

    # ------------------------------------------------------------ creating

    def _member_dir(self, member_id: str) -> Path:
        if not _SAFE_ID.fullmatch(member_id):
            raise ProviderError(f"{self._where()}: member id {member_id!r} is not a safe file name")
        return self.ctx.state_dir / "sandboxes" / member_id

    def _cgroup_dirs(self, member_id: str) -> list[str]:
        return [f"{b}/poolui/{self._ns}/{self.pool.name}/{member_id}" for b in self._cgroup_bases()]

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        program = self._prepare()
        mdir = self._member_dir(member_id)
        self._ended.pop(member_id, None)
        port = _free_port()
        expires = time.time() + ttl
        work = mdir / "work"
        if mdir.exists():  # left by an earlier attempt with the same id
            shutil.rmtree(mdir, ignore_errors=True)
        work.mkdir(parents=True)
        marker = f"{self._ns}/{self.pool.name}/{member_id}"
        env = {"PATH": SANDBOX_PATH, "HOME": "/work" if self._use_bwrap else str(work), "PORT": str(port),
               **dict(self.opts.env)}
        cmd = [program, *(a.replace("{port}", str(port)) for a in self.pool.command[1:])]
        if self._use_bwrap:
            assert self._bwrap
            setenv = [x for k, v in {**env, wd.ENV_MARKER: marker}.items() for x in ("--setenv", k, v)]
            cmd = [self._bwrap, *self._static, "--bind", str(work), "/work", "--chdir", "/work", *setenv,
                   "--", *cmd]
        limits = self.pool.limits
        argv = [
            PYTHON, "-I", "-S", "-c", WATCHDOG_CODE, wd.MARKER, f"ns={self._ns}", f"pool={self.pool.name}",
            f"member={member_id}", f"port={port}", f"expires={expires:.3f}", f"dir={mdir}", f"work={work}",
            f"mode={'bwrap' if self._use_bwrap else 'plain'}", f"marker={marker}",
            *(f"cg={d}" for d in self._cgroup_dirs(member_id)),
            f"mem={limits.memory or 0}", f"pids={limits.pids or 0}", "--", *cmd,
        ]
        self._starting.add(member_id)
        try:
            r, w = os.pipe()
            try:
                # vfork+exec on the loop's thread returns in well under a millisecond; a Popen or asyncio
                # transport would also kill the watchdog when collected, and it must outlive us.
                actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                           (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
                pid = os.posix_spawn(PYTHON, argv, env, setsid=True, file_actions=actions)  # noqa: ASYNC221
            except OSError as e:
                os.close(r)
                shutil.rmtree(mdir, ignore_errors=True)
                raise ProviderError(f"{self._where()}: cannot start the watchdog {PYTHON}: {e}") from None
            finally:
                os.close(w)
            watch = _Watch(member_id, pid, os.pidfd_open(pid), r, self._on_end)
            self._watches[member_id] = watch
        finally:
            self._starting.discard(member_id)
        wd_stat = wd.proc_stat(pid)
        try:
            if not await _wait(watch.got_head, 10.0):
                raise ProviderError(f"{self._where()}: sandbox {member_id}: the watchdog did not report in 10s")
            head = (watch.head or b"").decode(errors="replace").split("\t")
            if head[0] != "started":
                why = head[1] if head[0] == "failed" and len(head) > 1 else watch.describe()
                raise ProviderError(f"{self._where()}: sandbox {member_id} did not start: {why}")
        except BaseException:
            await asyncio.shield(self._finish(member_id, {}))
            raise
        watch.started = True
        ref = {
            "pid": int(head[1]), "start": int(head[2]), "watchdog_pid": pid,
            "watchdog_start": wd_stat[2] if wd_stat else 0, "boot_id": BOOT_ID, "port": port,
            "cgroups": head[4:], "memory_limit": head[3], "isolation": self.isolation,
        }
        return Sandbox(member_id, f"http://127.0.0.1:{port}", ref, expires)

    def _on_end(self, w: _Watch) -> None:
        if self._watches.get(w.member_id) is w:
            del self._watches[w.member_id]
        self._ended[w.member_id] = w.describe()
        while len(self._ended) > 256:
            self._ended.popitem(last=False)
        if w.started and not w.terminating:
            try:
                self.ctx.on_exit(w.member_id, self._ended[w.member_id])
            except Exception:
                log.exception("%s: on_exit(%s) failed", self._where(), w.member_id)

    def _watch(self, sb: Sandbox) -> _Watch | None:
        """Our watch of sb's watchdog; for one we did not start (adopted), opened from its ref."""
        w = self._watches.get(sb.member_id)
        if w is not None or sb.member_id in self._ended:
            return w
        ref = sb.ref
        try:
            asyncio.get_running_loop()
            pidfd = os.pidfd_open(ref["watchdog_pid"])
        except (RuntimeError, KeyError, TypeError, OSError):
            return None
        # Checked after pidfd_open, so the pidfd cannot name a recycled pid; and only our own watchdog of
        # this very member is ever signalled, whatever a stored ref says.
        if not (_ref_alive(ref, "watchdog_pid", "watchdog_start")
                and self._is_watchdog_of(ref["watchdog_pid"], sb.member_id)):
            os.close(pidfd)
            return None
        w = self._watches[sb.member_id] = _Watch(sb.member_id, ref["watchdog_pid"], pidfd, None, self._on_end)
        w.started = True
        return w

    def _is_watchdog_of(self, pid: int, member_id: str) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="surrogateescape").split("\0")
        except OSError:
            return False
        i = args.index(wd.MARKER) if wd.MARKER in args else len(args)
        return {f"ns={self._ns}", f"pool={self.pool.name}", f"member={member_id}"} <= set(args[i:])

    # ------------------------------------------------------------ probing

    def alive(self, sb: Sandbox) -> bool:
        if sb.member_id in self._ended:
            return False
        w = self._watch(sb)
        if w is not None and w.ended.is_set():
            return False
        return _ref_alive(sb.ref, "watchdog_pid", "watchdog_start") and _ref_alive(sb.ref, "pid", "start")

    async def _probe(self, kind: str, path: str, argv: tuple[str, ...], sb: Sandbox, timeout: float) -> ProbeResult:
        port = sb.ref.get("port", 0)
        if kind == "http":
            return await http_get(sb.url, path, timeout)
        if kind == "tcp":
            return await tcp_connect("127.0.0.1", port, timeout)
        args = [a.replace("{port}", str(port)).replace("{url}", sb.url) for a in argv]
        args[0] = _resolve(args[0], sandboxed=False) or args[0]
        return await run_exec(args, timeout)

    async def wait_ready(self, sb: Sandbox, timeout: float) -> None:
        cfg = self.pool.readiness
        deadline = time.monotonic() + timeout

        def probe() -> Awaitable[ProbeResult]:
            return self._probe(cfg.kind, cfg.path, cfg.argv, sb, max(0.05, min(2.0, deadline - time.monotonic())))

        try:
            await poll_until_ready(probe, lambda: self.alive(sb), timeout, cfg.interval, f"sandbox {sb.member_id}")
        except SandboxDied as e:
            w = self._watches.get(sb.member_id)
            if w is not None:
                await _wait(w.ended, 2.0)  # its last report says how it died
            raise SandboxDied(f"{e}; {self._ended.get(sb.member_id, 'no report from its watchdog')}") from None

    async def health(self, sb: Sandbox) -> ProbeResult:
        cfg = self.pool.health
        if cfg is None:
            return ProbeResult(True, "no health probe configured")
        if not self.alive(sb):
            return ProbeResult(False, "the sandbox has exited: " + self._ended.get(sb.member_id, "process gone"))
        try:
            return await self._probe(cfg.kind, cfg.path, cfg.argv, sb, cfg.timeout)
        except Exception as e:
            return ProbeResult(False, f"probe failed: {e}")

    # ------------------------------------------------------------ ending

    async def terminate(self, sb: Sandbox) -> None:
        await self._finish(sb.member_id, sb.ref)

    async def _finish(self, member_id: str, ref: dict[str, Any]) -> None:
        """Ask the watchdog to kill and clean up, force it if it does not, then sweep what may be left."""
        w = self._watches.get(member_id) or self._watch(Sandbox(member_id, ref=ref))
        if w is not None and not w.ended.is_set():
            w.terminating = True
            w.signal(signal.SIGTERM)
            if not await _wait(w.ended, 5.0):
                w.signal(signal.SIGKILL)
                await _wait(w.ended, 2.0)
        await asyncio.to_thread(self._sweep, member_id, ref)

    def _sweep(self, member_id: str, ref: dict[str, Any]) -> None:
        """Kill and remove whatever of one sandbox is left; a no-op after a watchdog that did its job."""
        suffix = f"/poolui/{self._ns}/{self.pool.name}/{member_id}"
        listed = [c for c in ref.get("cgroups", []) if isinstance(c, str) and c.endswith(suffix)]
        cgroups = [c for c in dict.fromkeys(listed + self._cgroup_dirs(member_id)) if os.path.isdir(c)]
        marker = f"{self._ns}/{self.pool.name}/{member_id}"
        pid = ref["pid"] if _ref_alive(ref, "pid", "start") and wd.has_marker(ref["pid"], marker) else 0
        used_cgroups = bool(listed or self._cgroup_bases())
        wd.kill_tree(cgroups, pid, "" if used_cgroups else marker)
        wd.remove_cgroups(cgroups)
        shutil.rmtree(self._member_dir(member_id), ignore_errors=True)

    async def list_ours(self) -> list[Sandbox]:
        found = await asyncio.to_thread(self._scan)
        for sb in found:
            self._watch(sb)  # so on_exit comes promptly for adopted sandboxes too
        return found

    def _scan(self) -> list[Sandbox]:
        found: list[Sandbox] = []
        live: set[str] = set()
        marked: dict[int, str] = {}  # pid -> member, for every process of this pool's sandboxes
        prefix = f"{self._ns}/{self.pool.name}/"
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            member = _marked_member(int(name), raw, prefix)
            if member:
                marked[int(name)] = member
            if wd.MARKER.encode() not in raw:
                continue
            args = [a.decode(errors="surrogateescape") for a in raw.split(b"\0")]
            i = args.index(wd.MARKER) if wd.MARKER in args else 0
            if i == 0 or "_watchdog" not in args[i - 1]:
                continue
            opts, _ = wd.parse(args[i + 1:])
            one = {k: v[0] for k, v in opts.items()}
            if one.get("ns") != self._ns or one.get("pool") != self.pool.name:
                continue
            live.add(one.get("member", ""))
            sb = self._adoptable(int(name), one, opts.get("cg", []))
            if sb is not None:
                found.append(sb)
        self._sweep_orphans(live)
        for pid, member in marked.items():
            if member not in live and member not in self._watches and member not in self._starting:
                # Its watchdog died before bubblewrap's own --die-with-parent took hold (or cgroups are off):
                # nothing enforces its TTL any more. Killing the outer bwrap takes the inside with it.
                log.warning("%s: killing process %d of sandbox %s, whose watchdog is gone", self._where(), pid, member)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        return found

    def _adoptable(self, pid: int, one: dict[str, str], cgroups: list[str]) -> Sandbox | None:
        st = wd.proc_stat(pid)
        child = _first_child(pid)
        cst = wd.proc_stat(child) if child else None
        if st is None or st[0] in ("Z", "X") or cst is None or cst[0] in ("Z", "X"):
            return None  # between the sandbox's exit and the watchdog's
        try:
            port, expires = int(one["port"]), float(one["expires"])
        except (KeyError, ValueError):
            return None
        ref = {"pid": child, "start": cst[2], "watchdog_pid": pid, "watchdog_start": st[2], "boot_id": BOOT_ID,
               "port": port, "cgroups": [c for c in cgroups if os.path.isdir(c)],
               "isolation": "bubblewrap" if one.get("mode") == "bwrap" else "plain process"}
        return Sandbox(one.get("member", ""), f"http://127.0.0.1:{port}", ref, expires)

    def _sweep_orphans(self, live: set[str]) -> None:
        """Cgroups of this pool whose watchdog is gone (it was SIGKILLed): nothing enforces their TTL
        any more, so whatever is in them is killed and they are removed."""
        for base in self._cgroup_bases():
            pool_dir = f"{base}/poolui/{self._ns}/{self.pool.name}"
            try:
                members = os.listdir(pool_dir)
            except OSError:
                continue
            for m in members:
                if (m in live or m in self._watches or m in self._starting or not _SAFE_ID.fullmatch(m)
                        or not os.path.isdir(f"{pool_dir}/{m}")):
                    continue
                log.warning("%s: killing sandbox %s, whose watchdog is gone", self._where(), m)
                self._sweep(m, {})

    async def close(self) -> None:
        for w in list(self._watches.values()):
            w.close()
        self._watches.clear()
        for base in self._bases or []:
            for sub in (f"{self._ns}/{self.pool.name}", self._ns, ""):  # only when empty
                with contextlib.suppress(OSError):
                    os.rmdir(f"{base}/poolui/{sub}".rstrip("/"))


def _marked_member(pid: int, cmdline: bytes, prefix: str) -> str:
    """The member id a process belongs to by the sandbox marker: on bwrap's command line
    (--setenv POOLUI_SANDBOX ns/pool/member) or in a plain sandbox's environment."""
    key = f"{wd.ENV_MARKER}\0{prefix}".encode()
    at = cmdline.find(key)
    if at >= 0:
        return cmdline[at + len(key):].split(b"\0", 1)[0].decode(errors="replace")
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = b"\0" + f.read()
    except OSError:
        return ""
    key = f"\0{wd.ENV_MARKER}={prefix}".encode()
    at = env.find(key)
    return env[at + len(key):].split(b"\0", 1)[0].decode(errors="replace") if at >= 0 else ""


def _first_child(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else 0
    except (OSError, ValueError):
        pass
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = wd.proc_stat(int(name))
            if st is not None and st[1] == pid:
                return int(name)
    return 0
