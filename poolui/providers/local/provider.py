"""LocalProvider: one watchdog process per sandbox on this machine (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ...config import PoolConfig
from ...errors import ProviderError, ProviderUnavailable, SandboxDied
from ..base import ProbeResult, ProviderContext, Sandbox
from ..common import Ended, fill, options_of
from ..probes import http_get, poll_until_ready, run_exec, tcp_connect
from . import _watchdog as wd
from . import agent_client, agent_zip
from .bwrap import static_args, try_bwrap
from .host import BOOT_ID, PYTHON, SAFE_ID, SANDBOX_PATH, SYSTEM_DIRS, cgroup_bases, ref_alive, resolve, under
from .launch import sandbox_env, watchdog_argv
from .options import LocalOptions, parse_options
from .scan import scan, trusted_cgroups, vouched
from .shield import Shield, decide
from .use import AGENT_DIR, AgentUse
from .watch import Watch, wait_set

log = logging.getLogger("poolui.providers.local")

class LocalProvider(AgentUse):
    kind = "local"

    def __init__(self, pool: PoolConfig, ctx: ProviderContext) -> None:
        self.pool = pool
        self.ctx = ctx
        self.opts: LocalOptions = options_of(pool, LocalOptions, parse_options)
        self._bwrap = shutil.which("bwrap") if self.opts.isolation != "none" else None
        self._use_bwrap = self._bwrap is not None  # check() turns it off in auto mode when bwrap cannot run
        self._ns = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.namespace) or "_"
        self._program: str | None = None
        self._bases: list[str] | None = None
        self._static: list[str] = []
        self._shield: Shield | None = None
        self._agent_zip = Path(AGENT_DIR)
        self._watches: dict[str, Watch] = {}
        self._starting: set[str] = set()
        self._ended = Ended()  # member -> how it ended

    @property
    def isolation(self) -> str:
        return "bubblewrap" if self._use_bwrap else "plain process"

    @property
    def shield(self) -> dict[str, object] | None:
        """What protects this pool's sandboxes (network, uid, seccomp, disk); None until prepared."""
        return self._shield.describe() if self._shield else None

    # ------------------------------------------------------------ preparing

    def _where(self) -> str:
        return f"pool '{self.pool.name}'"

    def _cgroup_bases(self) -> list[str]:
        if self._bases is None:
            self._bases = cgroup_bases() if self.opts.cgroups else []
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
        program = resolve(name, self._use_bwrap)
        if program is None:
            raise ProviderUnavailable(
                f"{where}: the command's program {name!r} was not found "
                + (f"in {SANDBOX_PATH} (all a bubblewrap sandbox can see); install it there, give an "
                   "absolute path and add its directory to ro_paths" if self._use_bwrap
                   else "on PATH; install it or give an absolute path"))
        if self._use_bwrap and not under(program, ["/usr", *SYSTEM_DIRS, *self.opts.ro_paths]):
            raise ProviderUnavailable(
                f"{where}: the command's program {program} is outside what a bubblewrap sandbox can see "
                f"(/usr and ro_paths); add its directory to ro_paths in [pools.{self.pool.name}.local]")
        self._check_ro_paths()
        if self._use_bwrap:
            self._static = static_args(self.opts)
        self._shield = decide(self.pool, self.opts, self._use_bwrap, self.has_agent, self.ctx.state_dir)
        self._agent_zip = agent_zip.build(self.ctx.state_dir) if self._use_bwrap else Path(AGENT_DIR)
        self._program = program
        return program

    def _check_ro_paths(self) -> None:
        state = str(self.ctx.state_dir.resolve())
        for p in self.opts.ro_paths:
            if not os.path.exists(p):
                raise ProviderUnavailable(f"{self._where()}: ro_paths entry {p} does not exist")
            if under(p, [state]) or under(state, [p]):
                raise ProviderUnavailable(
                    f"{self._where()}: ro_paths entry {p} would show the controller's state directory {state} "
                    "to sandboxes; remove it")

    async def check(self) -> None:
        if self._use_bwrap and self._bwrap:
            err = await try_bwrap(self._bwrap, self.opts)
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

    # ------------------------------------------------------------ creating

    def _member_dir(self, member_id: str) -> Path:
        if not SAFE_ID.fullmatch(member_id):
            raise ProviderError(f"{self._where()}: member id {member_id!r} is not a safe file name")
        return self.ctx.state_dir / "sandboxes" / member_id

    def _cgroup_dirs(self, member_id: str) -> list[str]:
        return [f"{b}/poolui/{self._ns}/{self.pool.name}/{member_id}" for b in self._cgroup_bases()]

    def _argv(self, program: str, member_id: str, port: int, expires: float, mdir: Path, work: Path) -> list[str]:
        return watchdog_argv(self.pool, program=program, member_id=member_id, port=port, expires=expires,
                             mdir=mdir, work=work, ns=self._ns, cgroups=self._cgroup_dirs(member_id),
                             env=self._env(port, work), bwrap=self._bwrap if self._use_bwrap else None,
                             static=self._static, agent=self._agent_zip if self.has_agent else None,
                             shield=self._shield)

    def _env(self, port: int, work: Path) -> dict[str, str]:
        return sandbox_env(self.pool, self.opts.env, port, work, self._use_bwrap)

    async def _spawn(self, member_id: str, argv: list[str], env: dict[str, str], mdir: Path) -> Watch:
        # posix_spawn waits for the child's exec, which took about 6 ms here: a burst of eight on the loop's
        # thread stalled every claim for 50 ms. On a thread (it releases the GIL) the loop goes on. A
        # Popen or an asyncio transport would also kill the watchdog when collected; it must outlive us.
        spawned = asyncio.get_running_loop().run_in_executor(None, _spawn_watchdog, argv, env)
        try:
            pid, r = await asyncio.shield(spawned)
        except asyncio.CancelledError:
            while not spawned.done():  # let it finish (milliseconds), however often we are cancelled meanwhile
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await asyncio.shield(spawned)
            if not spawned.cancelled() and spawned.exception() is None:
                self._watch_of(member_id, *spawned.result())  # so the bring-up's cleanup kills it
            raise
        except OSError as e:
            shutil.rmtree(mdir, ignore_errors=True)
            raise ProviderError(f"{self._where()}: cannot start the watchdog {PYTHON}: {e}") from None
        return self._watch_of(member_id, pid, r)

    def _watch_of(self, member_id: str, pid: int, r: int) -> Watch:
        watch = Watch(member_id, pid, os.pidfd_open(pid), r, self._on_end)
        self._watches[member_id] = watch
        return watch

    async def create(self, member_id: str, ttl: float) -> Sandbox:
        program = self._prepare()
        mdir = self._member_dir(member_id)
        self._ended.forget(member_id)
        port = self.ctx.ports.pick()
        expires = time.time() + ttl
        work = mdir / "work"
        if mdir.exists():  # left by an earlier attempt with the same id
            shutil.rmtree(mdir, ignore_errors=True)
        work.mkdir(parents=True)
        argv = self._argv(program, member_id, port, expires, mdir, work)
        self._starting.add(member_id)
        try:
            watch = await self._spawn(member_id, argv, self._env(port, work), mdir)
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(member_id, {}))
            raise
        finally:
            self._starting.discard(member_id)
        wd_stat = wd.proc_stat(watch.pid)
        try:
            if not await wait_set(watch.got_head, 10.0):
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
            "pid": int(head[1]), "start": int(head[2]), "watchdog_pid": watch.pid,
            "watchdog_start": wd_stat[2] if wd_stat else 0, "boot_id": BOOT_ID, "port": port,
            "cgroups": head[4:], "memory_limit": head[3], "isolation": self.isolation,
        }
        return Sandbox(member_id, f"http://127.0.0.1:{port}", ref, expires)

    def _on_end(self, w: Watch) -> None:
        if self._watches.get(w.member_id) is w:
            del self._watches[w.member_id]
        how = w.describe()
        self._ended.note(w.member_id, how)
        if w.started and not w.terminating:
            try:
                self.ctx.on_exit(w.member_id, how)
            except Exception:
                log.exception("%s: on_exit(%s) failed", self._where(), w.member_id)

    def _watch(self, sb: Sandbox) -> Watch | None:
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
        if not (ref_alive(ref, "watchdog_pid", "watchdog_start")
                and self._is_watchdog_of(ref["watchdog_pid"], sb.member_id)):
            os.close(pidfd)
            return None
        w = self._watches[sb.member_id] = Watch(sb.member_id, ref["watchdog_pid"], pidfd, None, self._on_end)
        w.started = True
        return w

    def _is_watchdog_of(self, pid: int, member_id: str) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            return False
        if not vouched(pid, raw):
            return False
        args = raw.decode(errors="surrogateescape").split("\0")
        i = args.index(wd.MARKER) if wd.MARKER in args else len(args)
        return {f"ns={self._ns}", f"pool={self.pool.name}", f"member={member_id}"} <= set(args[i:])

    # ------------------------------------------------------------ probing

    def alive(self, sb: Sandbox) -> bool:
        if sb.member_id in self._ended:
            return False
        w = self._watch(sb)
        if w is not None and w.ended.is_set():
            return False
        return ref_alive(sb.ref, "watchdog_pid", "watchdog_start") and ref_alive(sb.ref, "pid", "start")

    async def _probe(self, kind: str, path: str, argv: tuple[str, ...], sb: Sandbox, timeout: float) -> ProbeResult:
        port = sb.ref.get("port", 0)
        if kind == "http":
            return await http_get(sb.url, path, timeout)
        if kind == "tcp":
            return await tcp_connect("127.0.0.1", port, timeout)
        args = fill(argv, port=port, url=sb.url)
        args[0] = resolve(args[0], sandboxed=False) or args[0]
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
                await wait_set(w.ended, 2.0)  # its last report says how it died
            raise SandboxDied(f"{e}; {self._ended.get(sb.member_id, 'no report from its watchdog')}") from None

    async def health(self, sb: Sandbox) -> ProbeResult:
        cfg = self.pool.health
        if cfg is None:
            return ProbeResult(True, "no health probe configured")
        if not self.alive(sb):
            return ProbeResult(False, "the sandbox has exited: " + self._ended.get(sb.member_id, "process gone"))
        try:
            if self.has_agent:  # a sandbox whose agent is gone serves its URL but can be neither used nor reset
                try:
                    async with asyncio.timeout(cfg.timeout):
                        await agent_client.ping(self._member_dir(sb.member_id) / agent_client.SOCKET)
                except Exception as e:
                    return ProbeResult(False, f"the sandbox's agent does not answer ({e or type(e).__name__})")
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
            if not await wait_set(w.ended, 5.0):
                w.signal(signal.SIGKILL)
                await wait_set(w.ended, 2.0)
        await asyncio.to_thread(self._sweep, member_id, ref)

    def _sweep(self, member_id: str, ref: dict[str, Any]) -> None:
        """Kill and remove whatever of one sandbox is left; a no-op after a watchdog that did its job."""
        listed = trusted_cgroups(self._ns, self.pool.name, member_id, ref.get("cgroups", []))
        cgroups = [c for c in dict.fromkeys(listed + self._cgroup_dirs(member_id)) if os.path.isdir(c)]
        marker = f"{self._ns}/{self.pool.name}/{member_id}"
        pid = ref["pid"] if ref_alive(ref, "pid", "start") and wd.has_marker(ref["pid"], marker) else 0
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
        seen = scan(self._ns, self.pool.name)
        for sb in seen.found:
            sb.ref["cgroups"] = trusted_cgroups(self._ns, self.pool.name, sb.member_id, sb.ref.get("cgroups"))
        self._sweep_orphans(seen.live)
        for pid, member in seen.marked.items():
            if member not in seen.live and member not in self._watches and member not in self._starting:
                # Its watchdog died before bubblewrap's own --die-with-parent took hold (or cgroups are off):
                # nothing enforces its TTL any more. Killing the outer bwrap takes the inside with it.
                log.warning("%s: killing process %d of sandbox %s, whose watchdog is gone", self._where(), pid, member)
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        return seen.found

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
                if (m in live or m in self._watches or m in self._starting or not SAFE_ID.fullmatch(m)
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


def _spawn_watchdog(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Start the watchdog in a session of its own, its stdout and stderr a pipe; (pid, the pipe's read end)."""
    r, w = os.pipe()
    try:
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
        return os.posix_spawn(PYTHON, argv, env, setsid=True, file_actions=actions), r
    except OSError:
        os.close(r)
        raise
    finally:
        os.close(w)
