"""The per-sandbox watchdog: the process that owns one local sandbox's life, independent of the controller.

    python3 -I -S -c "...; import _watchdog; _watchdog.run()" poolui-watchdog KEY=VALUE... -- ARGV...

It makes the sandbox's cgroups, starts ARGV inside them, and kills the whole tree when the hard TTL
(`expires`, wall clock) is reached, when the sandbox exits by itself, or on SIGTERM (the controller's
terminate); then it removes the cgroups and the member directory, writes a last report and exits.
Nothing ties it to the controller, so sandboxes outlive a crashed controller (design rule 4), and its
argv is the marker by which a later controller finds and adopts them.

stdout is a pipe to the controller that started it: one line when the sandbox has started
("started\\tPID\\tSTART\\tMEMORY_LIMIT\\tCGROUP..." or "failed\\tMESSAGE") and, at the end,
"ended\\tREASON\\tSTATUS\\n" followed by the tail of the sandbox's output. Writes to a dead controller
are simply lost.

Standard library only and few imports: it starts on every create, so its start-up is on the critical path.
The controller imports the same module for its own fallback kill.
"""

from __future__ import annotations

import os
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    import _signal as signal  # the same calls and numbers: signal's enums cost the start ~8 ms (enum, functools)

try:
    from . import _egress as egress
    from . import _forward as forward
    from . import _libc as libc
    from . import _userns as userns
    from . import _watch_fds as fds
    from ._cgroups import early, make_cgroups, procs, remove_cgroups, write
    from ._kill import kill_all, oom_kills, rmtree  # the controller imports this module as part of the package
except ImportError:
    import _egress as egress  # type: ignore[no-redef]
    import _forward as forward  # type: ignore[no-redef]
    import _libc as libc  # type: ignore[no-redef]
    import _userns as userns  # type: ignore[no-redef]
    import _watch_fds as fds  # type: ignore[no-redef]  # run as the watchdog, from its own directory
    from _cgroups import early, make_cgroups, procs, remove_cgroups, write  # type: ignore[no-redef]
    from _kill import kill_all, oom_kills, rmtree  # type: ignore[no-redef]

MARKER = "poolui-watchdog"
ENV_MARKER = "POOLUI_SANDBOX"
TAIL = 2048  # bytes of sandbox output kept for the last report; header + tail stay under PIPE_BUF


class Stop(Exception):
    """SIGTERM/SIGINT: kill the sandbox now."""


def parse(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """KEY=VALUE words up to "--" (a key may repeat), then the sandbox's argv."""
    opts: dict[str, list[str]] = {}
    i = 0
    while i < len(args) and args[i] != "--":
        key, _, value = args[i].partition("=")
        opts.setdefault(key, []).append(value)
        i += 1
    return opts, args[i + 1:]


# ---------------------------------------------------------------- /proc


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks since boot), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def is_alive(pid: int, start: int) -> bool:
    """The very process started at `start` is running: a recycled pid or a zombie does not count."""
    st = proc_stat(pid)
    return st is not None and st[2] == start and st[0] not in ("Z", "X")


def has_marker(pid: int, marker: str) -> bool:
    """The process's environment carries this sandbox's marker (inherited by everything the sandbox starts)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"\0{ENV_MARKER}={marker}\0".encode() in b"\0" + f.read()
    except OSError:
        return False  # gone, or a zombie


def marked(marker: str) -> list[int]:
    """Live processes carrying the marker: the way to the whole tree when there are no cgroups."""
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and has_marker(int(n), marker)]


# ---------------------------------------------------------------- cgroups


def kill_tree(cgroups: list[str], pid: int = 0, marker: str = "", wait: float = 2.0) -> bool:
    """SIGKILL every process of one sandbox; True once none is left (within `wait` seconds).

    cgroup.kill (v2) takes everything at once, including children that called setsid; v1 cgroups are
    emptied by killing what cgroup.procs lists until it stays empty; without cgroups, the process group
    of `pid` and every process carrying the environment marker. Under bubblewrap the pid namespace
    dies with its first process as well.
    """
    for d in cgroups:
        write(d + "/cgroup.kill", 1)
    if pid > 0:
        for kill in (os.kill, os.killpg):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return not kill_all(lambda: [p for d in cgroups for p in procs(d)] + (marked(marker) if marker else []), wait)


# ---------------------------------------------------------------- the sandbox


def _stop(signum: int, frame: object) -> None:
    raise Stop()


def spawn(cmd: list[str], cgroups: list[str], workdir: str, out_w: int, env: dict[str, str],
          rlimit_as: int, pdeath: bool, ids: tuple[int, int] | None = None) -> int:
    """Fork and exec the sandbox in its own session and cgroups; the exec's failure is raised here.

    SIGTERM/SIGINT are blocked on return, so the caller records the pid before a Stop can interrupt it.
    """
    if pdeath:
        libc.load("prctl")  # here: the child must not pay for it between fork and exec
    err_r, err_w = os.pipe()  # close-on-exec: EOF means the exec worked
    devnull = os.open(os.devnull, os.O_RDWR)
    parent = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    pid = os.fork()
    if pid == 0:
        try:
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(s, signal.SIG_DFL)  # ignored signals would stay ignored across exec
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            for d in cgroups:
                with open(d + "/cgroup.procs", "w") as f:
                    f.write("0")
            os.setsid()
            if ids is not None:  # before the parent-death signal: a change of credentials clears it
                os.setgroups([])
                os.setresgid(ids[1], ids[1], ids[1])
                os.setresuid(ids[0], ids[0], ids[0])
            if pdeath:
                libc.die_with_parent(signal.SIGKILL)  # the watchdog owns this process's life
                if os.getppid() != parent:
                    os._exit(1)
            if rlimit_as:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
            os.chdir(workdir)
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.execve(cmd[0], cmd, env)
        except BaseException as e:
            try:
                os.write(err_w, f"{cmd[0]}: {e}".encode(errors="replace"))
            finally:
                os._exit(127)
    os.close(err_w)
    os.close(devnull)
    err = b""
    while chunk := os.read(err_r, 4096):
        err += chunk
    os.close(err_r)
    if err:
        os.waitpid(pid, 0)
        raise OSError(err.decode(errors="replace"))
    return pid


def watch(pid: int, out_r: int, deadline: float, cgroups: list[str]) -> tuple[str, bytes]:
    """Collect the sandbox's output until it exits ("exited"), the deadline passes ("ttl"), the kernel
    kills one of its processes for memory ("oom": the rest goes too, a half-killed sandbox is not handed on)
    or an egress sandbox's firewall cannot take in an address this machine gained ("firewall")."""
    pidfd = os.pidfd_open(pid)
    net = egress.watching()  # an egress sandbox's: this machine's addresses changed
    fds, tail = [pidfd, out_r, *([net] if net >= 0 else [])], b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "ttl", tail
        ready, _, _ = select.select(fds, [], [], min(left, 0.25))
        if cgroups and oom_kills(cgroups):
            return "oom", tail
        if out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                tail = (tail + data)[-TAIL:]
            else:
                fds.remove(out_r)
        if pidfd in ready:
            os.set_blocking(out_r, False)
            try:
                for _ in range(64):  # bounded: a leftover child may still be writing
                    data = os.read(out_r, 65536)
                    if not data:
                        break
                    tail = (tail + data)[-TAIL:]
            except OSError:
                pass
            return "exited", tail
        if net in ready:  # after the exit above: a sandbox that ended needs no firewall
            try:
                egress.changed()
            except OSError:
                return "firewall", tail  # it could reach an address of this machine: it does not run on


def reap(pid: int, wait: float = 5.0) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "unknown"
        if done:
            if os.WIFSIGNALED(status):
                return f"killed by signal {os.WTERMSIG(status)}"
            return f"exit status {os.waitstatus_to_exitcode(status)}"
        if time.monotonic() > deadline:
            return "still running"
        time.sleep(0.002)


def say(data: bytes) -> None:
    try:
        os.write(1, data)
    except OSError:
        pass  # the controller is gone; nobody to tell


def _network(pid: int, fwd: bool, pasta: str, mdir: str, ids: tuple[int, int] | None) -> None:
    """The claim URL's forwarder, outside the sandbox (isolated, egress), and pasta's way out (egress)."""
    if fwd:
        forward.start(pid, fds.URL_FD, ids if os.geteuid() == 0 else None)
        os.close(fds.URL_FD)  # the forwarder's now
    if pasta:
        egress.start(pid, pasta, mdir, spawn)


def _begin() -> None:
    """No fd of the controller's (database, sockets) may leak in; SIGTERM/SIGINT stop the sandbox."""
    if not early():  # else closed before the imports, and a thread of _cgroups' may hold a descriptor now
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def main(args: list[str]) -> int:
    _begin()
    opts, cmd = parse(args)

    def one(key: str, default: str = "") -> str:
        return opts.get(key, [default])[0]

    cgroups: list[str] = []
    pid, reason, tail, started = 0, "failed", b"", False
    marker = one("marker")
    try:
        fds.prepare(opts)
        ids = (int(one("uid")), int(one("gid"))) if one("uid") else None
        two = [int(x) for x in one("userns").split(":")] if one("userns") else []  # agent uid, gid; sandbox's
        if two:
            ids, ends = (two[0], two[1]), userns.pipes()
        deadline = time.monotonic() + float(one("expires")) - time.time()
        memory = int(one("mem", "0"))
        cgroups, mem_limited = make_cgroups(opts.get("cg", []), memory, int(one("pids", "0")))
        out_r, out_w = os.pipe()
        env = dict(os.environ)
        env[ENV_MARKER] = marker
        rlimit_as = 0 if mem_limited else memory
        try:
            # bubblewrap's --die-with-parent takes hold only part-way through its start (its own
            # credential change clears an earlier parent-death signal), so a watchdog SIGKILLed in that
            # moment can still orphan it; the provider's list_ours() sweep catches those by their marker.
            pid = spawn(cmd, cgroups, one("work"), out_w, env, rlimit_as, pdeath=True, ids=ids)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        if two:
            userns.write_maps(*ends, (two[0], two[1]), (two[2], two[3]))
        fds.handed_over(opts)
        os.close(out_w)
        _network(pid, one("fwd") == "1", one("pasta"), one("dir"), ids)
        st = proc_stat(pid)
        limit = "cgroup" if mem_limited else "rlimit" if rlimit_as else "none"
        say("\t".join(["started", str(pid), str(st[2] if st else 0), limit, *cgroups]).encode() + b"\n")
        started = True
        reason, tail = watch(pid, out_r, deadline, cgroups if mem_limited else [])
    except Stop:
        reason = "terminated"
    except Exception as e:
        if not started:
            say(f"failed\t{e}".replace("\n", " ").encode(errors="replace") + b"\n")
    finally:
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)  # a second terminate must not cut the cleanup short
    egress.stop()
    forward.stop()
    kill_tree(cgroups, pid, "" if cgroups else marker)
    status = reap(pid) if pid else "not started"
    remove_cgroups(cgroups)
    if one("dir"):
        rmtree(one("dir"))
    say(f"ended\t{reason}\t{status}\n".encode() + tail)
    return 0


def run() -> None:
    sys.exit(main(sys.argv[sys.argv.index(MARKER) + 1:]))


if __name__ == "__main__":
    run()
