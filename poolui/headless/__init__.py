"""`poolui --headless VERB`: the control verbs for scripts and on-call, text or --json.

Never imports textual, rich, fastapi, uvicorn or starlette (an import-linter contract and
tests/test_headless.py check it), and only what a verb needs: `check` must stay well under 200 ms.
Modules: check (Nagios), verbs (the control verbs over the contract), demo (embedded), simulate (replays on
virtual time, poolui.sim), output.
Data goes to stdout, diagnostics to stderr.

Exit codes: `check` follows the Nagios plugin API (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Every other
verb: 0 done, 1 refused by the pool (unknown pool or sandbox, exhausted, bad value), 2 usage,
3 no server or token refused, 4 timed out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import bounds as b
from ..argtypes import seconds, whole
from ..errors import ClaimTimeout, ConfigError, PoolError, ServerUnreachable, Unauthorized, WarmUpTimeout
from .check import cmd_check
from .output import Exit, Nagios, UsageError, err, out
from .simulate import add_simulate_verb
from .use import add_use_verbs

REQUEST_TIMEOUT = 10.0  # seconds, each HTTP request's, when --timeout is not given


def add_common(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """The options every verb takes; `suppress` keeps a verb's copy from overwriting one given before it."""

    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--json", action="store_true", default=d(False), help="print JSON on stdout")
    p.add_argument("--server", metavar="URL", default=d(None),
                   help="server URL (default: $POOLUI_SERVER, else the pool file's [server] table)")
    p.add_argument("--pool", metavar="NAME", default=d(None), help="the pool (needed when there are several)")
    p.add_argument("--config", metavar="FILE", default=d(None),
                   help="pool file (default: $POOLUI_CONFIG, else $XDG_CONFIG_HOME/poolui/local.toml, a copy of the "
                        "bundled local pool file made on first use)")
    p.add_argument("--token-file", metavar="FILE", default=d(None),
                   help="token file (default: $POOLUI_TOKEN, else [server].token_file, else STATE_DIR/token)")
    p.add_argument("--state-dir", metavar="DIR", default=d(None), help="where the server keeps its state")
    # None until parsed: `drain --wait` needs to know whether the operator gave it (see main).
    p.add_argument("--timeout", metavar="SECONDS", type=seconds(0.001, b.MAX_WAIT), default=d(None),
                   help=f"HTTP timeout of each request (default {REQUEST_TIMEOUT:g}); with drain --wait, "
                        "the bound of the whole wait")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poolui --headless",
        description="poolui without the console (no TUI at all): control verbs for scripts and monitoring.",
        epilog="check exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; other verbs 0 done, 1 refused, 2 usage, "
               "3 no server or bad token, 4 timed out (drain --wait: not empty in time).",
    )
    add_common(p)
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help_: str) -> argparse.ArgumentParser:
        v = sub.add_parser(name, help=help_, description=help_)
        add_common(v, suppress=True)
        return v

    verb("check", "one status line per pool with Nagios exit codes")
    verb("list", "pools and their sandboxes")
    c = verb("claim", "claim a sandbox: prints 'ID URL'")
    c.add_argument("--wait", metavar="SECONDS", type=seconds(0, b.MAX_WAIT), default=None,
                   help="how long to wait for one (default: the pool's claim_timeout)")
    c.add_argument("--check-health", action="store_true", help="probe it before it is handed out")
    c.add_argument("--key", metavar="CLAIM_KEY", default=None,
                   help="idempotency key: claiming again with it returns the same sandbox")
    c.add_argument("--lease", metavar="SECONDS", type=seconds(b.MIN_LEASE, b.MAX_LEASE), default=None,
                   help="the claim ends unless renewed within this long (default: the pool's claim_lease)")
    r = verb("release", "end a claim (the sandbox is terminated and replaced)")
    r.add_argument("id", metavar="ID", nargs="?", default=None)
    r.add_argument("--key", metavar="CLAIM_KEY", default=None,
                   help="release whatever claim this key holds instead (a key holding none is a no-op)")
    rn = verb("renew", "extend a claim's lease")
    rn.add_argument("id", metavar="ID")
    rn.add_argument("--lease", metavar="SECONDS", type=seconds(b.MIN_LEASE, b.MAX_LEASE), default=None,
                    help="seconds from now (default: the claim's own lease length)")
    t = verb("terminate", "terminate sandboxes, claimed or not")
    t.add_argument("ids", metavar="ID", nargs="+")
    z = verb("resize", "change how many sandboxes stay warm")
    z.add_argument("target", metavar="N", type=whole(0, b.MAX_SIZE), nargs="?", default=None, help="target ready")
    z.add_argument("--min", type=whole(0, b.MAX_SIZE), default=None, help="min_ready")
    z.add_argument("--max", type=whole(0, b.MAX_SIZE), default=None, help="max_ready")
    z.add_argument("--persist", action="store_true", help="also write the sizes into the pool file")
    dr = verb("drain", "no new claims; retire ready sandboxes; claimed ones finish")
    dr.add_argument("--wait", action="store_true",
                    help="return once the pool is empty; --timeout bounds the whole wait (then exit 4, "
                         "naming what is still claimed; the pool keeps draining)")
    dr.add_argument("--drain-timeout", metavar="SECONDS", type=seconds(0, b.MAX_WAIT), default=None,
                    help="with --wait: the bound of the whole wait, when --timeout should stay the HTTP one")
    verb("pause", "keep serving claims, stop refilling")
    verb("resume", "undo pause or drain")
    verb("maintain", "probe ready sandboxes now, remove bad and expiring ones, refill")
    e = verb("events", "print state changes as they happen")
    e.add_argument("--count", type=whole(0, 10**9), default=0, help="stop after this many (default: follow)")
    e.add_argument("--format", choices=("text", "trace"), default="text",
                   help="trace: the pool's claims as a trace for simulate --trace (CSV; --count counts claims)")
    add_use_verbs(verb)
    add_simulate_verb(verb)
    verb("doctor", "say what this machine can give local sandboxes (isolation, uid, seccomp, cgroups) and why not")
    demo = verb("demo", "run the pool in this process: warm it, claim, ask the sandbox, release, stop")
    demo.add_argument("--wait", metavar="SECONDS", type=float, default=60.0,
                      help="how long warming and claiming may take (default 60)")
    return p


def _exit_for(e: PoolError) -> int:
    if isinstance(e, ServerUnreachable | Unauthorized):
        return Exit.UNREACHABLE
    if isinstance(e, ClaimTimeout | WarmUpTimeout):
        return Exit.TIMEOUT
    return Exit.REFUSED


async def run_async(args: argparse.Namespace) -> int:
    if args.verb == "demo":
        from .demo import cmd_demo

        return await cmd_demo(args)
    if args.verb == "doctor":
        from .demo import cmd_doctor

        return await cmd_doctor(args)
    from ..connect import open_control
    from .verbs import VERBS

    async with open_control(args.server, args.config, args.token_file, args.state_dir, embedded=False,
                            timeout=args.timeout) as opened:
        return await VERBS[args.verb](opened.control, args)


def _import_httpx_lean() -> None:
    """httpx imports its own command line (click, rich, pygments: ~35 ms) when click is installed, and
    httpcore its HTTP/2 support (~9 ms) when h2 is; a headless verb uses neither, and `check` has a 200 ms
    budget. Both treat the package as absent when importing it fails."""

    if "httpx" in sys.modules:
        return
    hidden = [m for m in ("click", "h2") if m not in sys.modules]  # h2: HTTP/2, which poolui never asks for
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        for m in hidden:
            del sys.modules[m]


def main(argv: list[str]) -> int:
    parser = build_parser()
    # exec and run: everything after the first "--" is the command, options of ours may come anywhere before
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.cmd = argv[cut + 1:]
    args.timeout_given = args.timeout is not None
    if args.timeout is None:
        args.timeout = REQUEST_TIMEOUT
    if args.verb == "check":
        try:
            return cmd_check(args)
        except PoolError as e:
            out(f"POOLUI UNKNOWN - {e.code}: {e}")
            return Nagios.UNKNOWN
        except KeyboardInterrupt:
            return Nagios.UNKNOWN
        except BrokenPipeError:
            return Nagios.UNKNOWN
    _import_httpx_lean()
    import asyncio  # here, not at the top: `check` (above) never needs it, and it costs ~50 ms to import

    try:
        if args.verb == "simulate":  # runs loops of its own, on virtual time
            from .simulate import cmd_simulate

            return cmd_simulate(args)
        return asyncio.run(run_async(args))
    except KeyboardInterrupt:
        err("interrupted")
        return Exit.INTERRUPTED
    except UsageError as e:
        err(str(e))
        return Exit.USAGE
    except (ServerUnreachable, Unauthorized) as e:
        hint = "" if isinstance(e, Unauthorized) else "; is `poolui serve` running?"
        err(f"{e}{hint}")
        return Exit.UNREACHABLE
    except ConfigError as e:
        err(str(e))
        return Exit.USAGE
    except PoolError as e:
        err(f"{e.code}: {e}")
        return _exit_for(e)
    except BrokenPipeError:
        return Exit.OK
