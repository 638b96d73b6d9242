"""`poolui`: the console (default), `poolui serve`, and `poolui --headless VERB`.

Each path imports only what it needs: the headless verbs never load textual or FastAPI, the console never
loads uvicorn.
"""

from __future__ import annotations

import argparse
import sys

from . import bounds as b
from .argtypes import seconds, whole

DEFAULT_POOL_FILE = ("$POOLUI_CONFIG, else $XDG_CONFIG_HOME/poolui/local.toml (~/.config/poolui), a copy of the "
                     "bundled local pool file made on first use")
DEFAULT_STATE = "$XDG_STATE_HOME/poolui (~/.local/state/poolui)"


def _serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="poolui serve", description="Run every pool of the file as an HTTP service.")
    p.add_argument("--config", metavar="FILE", default=None, help=f"pool file (default: {DEFAULT_POOL_FILE})")
    p.add_argument("--listen", metavar="HOST:PORT", default=None,
                   help="address to listen on (default: [server].listen, else 127.0.0.1:8765); port 0 picks one")
    p.add_argument("--token-file", metavar="FILE", default=None,
                   help="token file (default: [server].token_file, else STATE_DIR/token; $POOLUI_TOKEN wins)")
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help=f"state directory (default: [server].state_dir, else {DEFAULT_STATE})")
    p.add_argument("--on-shutdown", choices=("keep", "terminate"), default=None,
                   help="on SIGTERM/SIGINT keep the sandboxes for the next start, or terminate them "
                        "(default: [server].on_shutdown, else keep)")
    p.add_argument("--grace", metavar="SECONDS", type=seconds(0, b.MAX_WAIT), default=10.0,
                   help="how long in-flight requests may finish after the first signal (default 10)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    p.add_argument("--events-queue", type=whole(1, 1_000_000), default=1000, metavar="N",
                   help="events a /events client may fall behind before it is dropped (default 1000)")
    p.add_argument("--events-write-timeout", type=seconds(0.01, b.MAX_WAIT), default=10.0, metavar="SECONDS",
                   help="a /events client whose socket takes no data this long is dropped (default 10)")
    return p


def serve_main(argv: list[str]) -> int:
    args = _serve_parser().parse_args(argv)
    import logging

    from .connect import load
    from .errors import PoolError

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from .server.run import ServeOptions, run_loop, serve

        config = load(args.config)
        opts = ServeOptions(listen=args.listen, token_file=args.token_file, state_dir=args.state_dir,
                            on_shutdown=args.on_shutdown, grace=args.grace, log_level=args.log_level,
                            events_queue=args.events_queue, events_write_timeout=args.events_write_timeout)
        return run_loop(serve(config, opts))
    except PoolError as e:
        print(f"poolui serve: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _console_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="poolui",
        description="Operations console for pools of warm sandboxes. With no server running and a local pool "
                    "file it runs the pools in its own process.",
        epilog="Also: `poolui serve --help` (the HTTP service) and `poolui --headless --help` (no TUI at all: "
               "check, list, claim, release, renew, terminate, resize, drain, pause, resume, maintain, events, demo, "
               "doctor).",
    )
    p.add_argument("--config", metavar="FILE", default=None, help=f"pool file (default: {DEFAULT_POOL_FILE})")
    p.add_argument("--server", metavar="URL", default=None,
                   help="server URL, used even if it runs other pools than the pool file's (default: "
                        "$POOLUI_SERVER, else the pool file's [server] url or listen address, if the server there "
                        "runs that file's pools; with none answering, the console runs them itself)")
    p.add_argument("--token-file", metavar="FILE", default=None,
                   help="the server's token file (default: [server].token_file, else STATE_DIR/token; "
                        "$POOLUI_TOKEN wins)")
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help=f"state directory (default: [server].state_dir, else {DEFAULT_STATE})")
    p.add_argument("--pool", metavar="NAME", default=None,
                   help="open on this pool (default: the pools overview when the file has several, else its pool)")
    p.add_argument("--read-only", action="store_true", help="watch only: every action is disabled")
    p.add_argument("--headless", action="store_true", help="no console: run a verb (see poolui --headless --help)")
    p.add_argument("-V", "--version", action=_Version, help="print poolui's version and exit")
    return p


class _Version(argparse.Action):
    """--version as argparse's own action, but the installed version is looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(f"poolui {version()}")
        parser.exit()


def console_main(argv: list[str]) -> int:
    args = _console_parser().parse_args(argv)
    from .tui.app import run

    return run(args)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("poolui")
    except PackageNotFoundError:
        return "0 (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):
        print(f"poolui {version()}")
        return 0
    if argv and argv[0] == "serve":
        return serve_main(argv[1:])
    if "--headless" in argv:
        argv.remove("--headless")
        from .headless import main as headless_main

        return headless_main(argv)
    return console_main(argv)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
