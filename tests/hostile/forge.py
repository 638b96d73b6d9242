"""Sandbox code that passes itself off as a watchdog of its pool (standard library only): a process whose
command line says "_watchdog poolui-watchdog ns=... pool=... member=MEMBER cg=...", each cg a directory in
the sandbox's own /work, seen from the host through /proc/N/root, whose cgroup.procs lists the pids the
controller would kill for it. Plan on stdin: {"member": ..., "roots": [N, ...], "victims": [pid, ...]}."""

import json
import os
import sys

plan = json.loads(sys.stdin.read())
ns, pool, _ = os.environ["POOLUI_SANDBOX"].split("/")
d = f"/work/poolui/{ns}/{pool}/{plan['member']}"
os.makedirs(d, exist_ok=True)
with open(d + "/cgroup.procs", "w") as f:
    f.write("".join(f"{p}\n" for p in plan["victims"]))
fake = "import os, time; os.fork(); time.sleep(3600)  # _watchdog, with a child as a sandbox"
argv = ["/usr/bin/python3", "-c", fake, "poolui-watchdog", f"ns={ns}", f"pool={pool}", f"member={plan['member']}",
        "port=1", "expires=9999999999", "mode=bwrap", *(f"cg=/proc/{n}/root{d}" for n in plan["roots"])]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv(argv[0], argv)
    os._exit(0)
os.wait()
print("forged")
