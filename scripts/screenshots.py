"""Screenshots of the console for the README and docs/console.md: screenshots/*.png (and the SVGs).

It runs the real thing: a pool file of three local pools (config/local.toml's pool "web", and "api" and
"batch" of other sizes; Python HTTP servers in bubblewrap sandboxes) embedded in a temporary state directory.
It claims and releases a few sandboxes, so the windows have claims to show, and keeps one claimed (key
ci-job-4411), then drives the console headless with Pilot: the pools overview (the start screen of a file of
several pools), the pool view, a terminate confirmation (Cancel focused, as it opens), the resize dialog, the
help screen, the what-if, and the pool view at 80x24. Everything it started is stopped before it exits.

Needs: the dev install (textual) and, for PNGs, CairoSVG (`pip install cairosvg`, which needs the system's
libcairo2) or else `rsvg-convert` (Debian librsvg2-bin). Without either it leaves the SVGs only.
The terminal font in the SVG is swapped for DejaVu Sans Mono (Debian fonts-dejavu-core), which is on
most machines; Fira Code, the SVG's own choice, usually is not, and the fallback is proportional.

Run: .venv/bin/python scripts/screenshots.py [--out screenshots] [--size 120x34]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w
from textual.pilot import Pilot

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poolui.core.manager import PoolManager  # noqa: E402
from poolui.pool_file import DEFAULT_CONFIG, load_config  # noqa: E402
from poolui.tui.app import PoolApp  # noqa: E402
from poolui.tui.screens.confirm import ConfirmScreen  # noqa: E402
from poolui.tui.screens.help import HelpScreen  # noqa: E402
from poolui.tui.screens.overview import OverviewScreen  # noqa: E402
from poolui.tui.screens.resize import ResizeScreen  # noqa: E402
from poolui.tui.screens.whatif import WhatIfScreen  # noqa: E402

FONT = "DejaVu Sans Mono"
OVERVIEW_ROWS = 14  # the overview of three pools, without a screen of empty rows under them


def to_png(svg: Path) -> Path | None:
    text = svg.read_text()
    # Fira Code is rarely installed; the fallback then is a proportional face. A monospace face keeps cells square.
    text = re.sub(r'font-family: "?Fira Code"?, monospace', f'font-family: "{FONT}", monospace', text)
    text = re.sub(r"local\(\"FiraCode-[A-Za-z]+\"\)", f'local("{FONT}")', text)
    # Textual pads a styled run with no-break spaces; without xml:space="preserve" librsvg drops those at a run's
    # start, and the words of neighbouring runs run together ("pools.tomlwindow").
    text = text.replace("<svg ", '<svg xml:space="preserve" ', 1)
    png = svg.with_suffix(".png")
    try:
        import cairosvg

        cairosvg.svg2png(bytestring=text.encode(), write_to=str(png), output_width=1600)
        return png
    except ImportError:
        pass
    if shutil.which("rsvg-convert"):
        fixed = svg.with_suffix(".mono.svg")
        fixed.write_text(text)
        subprocess.run(["rsvg-convert", "-w", "1600", "-o", str(png), str(fixed)], check=True)
        fixed.unlink()
        return png
    return None


async def until(pilot: object, cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def pool_file(tmp: Path) -> Path:
    """config/local.toml's pool, and two more of other sizes, in a state directory of their own."""
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    web = data["pools"]["web"]
    data["pools"]["api"] = {**web, "target_ready": 2, "min_ready": 1, "max_ready": 6, "max_total": 8, "ttl": "10m"}
    data["pools"]["batch"] = {**web, "target_ready": 1, "min_ready": 0, "max_ready": 4, "max_total": 4,
                              "ttl": "30m", "min_remaining_ttl": "5m"}
    data["server"] = {"state_dir": str(tmp / "state"), "listen": "127.0.0.1:0"}
    path = tmp / "pools.toml"
    path.write_bytes(tomli_w.dumps(data).encode())
    return path


async def busy(mgr: PoolManager) -> None:
    """Claims over the last minute (warm ones, one cold on a pool caught empty, a run of short ones on web
    for the what-if to replay), and one kept claimed."""
    await mgr.warm_up(60)
    for _ in range(24):
        claim = await mgr.claim("web", timeout=30)
        await mgr.release("web", claim.id)
    for _ in range(3):
        claim = await mgr.claim("api")
        await mgr.release("api", claim.id)
        await mgr.warm_up(60)
    first = await mgr.claim("batch")
    second = await mgr.claim("batch")  # none ready: cold, made on demand
    for claim in (first, second):
        await mgr.release("batch", claim.id)
    await mgr.claim("web", claim_key="ci-job-4411")
    await mgr.warm_up(60)


class Shooter:
    """Saves what the console shows as out/NAME.svg and .png."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[Path] = []

    async def save(self, app: PoolApp, pilot: Pilot[int], name: str, title: str) -> None:
        await pilot.pause()
        svg = self.out / f"{name}.svg"
        svg.write_text(app.export_screenshot(title=f"poolui: {title}"))
        self.written.append(to_png(svg) or svg)


def warm(app: PoolApp, pool: str, ready: int) -> bool:
    snap = app.state.summaries.get(pool)
    return snap is not None and snap.ready >= ready


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the app runs)
    shots = Shooter(out)
    with tempfile.TemporaryDirectory(prefix="poolui-shots-") as tmp:
        cfg = load_config(pool_file(Path(tmp)))
        async with PoolManager(cfg, state_dir=cfg.state_dir) as mgr:
            await busy(mgr)
            names = list(cfg.pools)
            overview = PoolApp(mgr, pools=names, source="pools.toml")
            async with overview.run_test(size=(size[0], OVERVIEW_ROWS)) as pilot:  # three rows need no more
                await until(pilot, lambda: isinstance(overview.screen, OverviewScreen) and warm(overview, "web", 3)
                            and warm(overview, "api", 2) and warm(overview, "batch", 1), 30, "the pools warm")
                await shots.save(overview, pilot, "overview", "pools overview")
            app = PoolApp(mgr, pools=names, source="pools.toml")
            # The resize dialog names the file it would save to: the file's name, not the temporary directory's.
            app.state.config_path = "pools.toml"
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: isinstance(app.screen, OverviewScreen) and warm(app, "web", 3), 30,
                            "the overview")
                await pilot.pause(1.0)  # a second of trends behind the pool view
                await pilot.press("enter")  # the first row: web
                await until(pilot, lambda: app.screen is app.dashboard and app.state.pool == "web", 10, "web")
                await pilot.press("4")
                await until(pilot, lambda: len(app.table().rows) >= 4, 10, "the all tab")
                await shots.save(app, pilot, "pool", "pool view")
                await pilot.press("1", "home", "space", "space", "t")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the confirmation")
                await shots.save(app, pilot, "confirm", "terminate, Cancel focused")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.dashboard, 10, "the pool view")
                await pilot.press("escape")  # the marks go
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 10, "the resize dialog")
                await shots.save(app, pilot, "resize", "resize")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.dashboard, 10, "the pool view")
                await pilot.press("f")
                await until(pilot, lambda: isinstance(app.screen, WhatIfScreen) and app.screen.inputs is not None
                            and not any(c not in app.screen.results for c in app.screen.wanted()), 120,
                            "the what-if's replays")
                await shots.save(app, pilot, "whatif", "what-if")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.dashboard, 10, "the pool view")
                await pilot.press("question_mark")
                await until(pilot, lambda: isinstance(app.screen, HelpScreen), 10, "the help screen")
                await shots.save(app, pilot, "help", "keys")
            small = PoolApp(mgr, pools=names, source="pools.toml", pool="web")
            async with small.run_test(size=(80, 24)) as pilot:
                await until(pilot, lambda: small.state.current is not None and small.state.current.ready >= 3
                            and len(small.table().rows) >= 3, 30, "web at 80x24")
                await shots.save(small, pilot, "console-80x24", "80x24")
    return shots.written


def main() -> int:
    ap = argparse.ArgumentParser(description="Write screenshots of the console to screenshots/.")
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots")
    ap.add_argument("--size", default="120x34", help="terminal size, COLUMNSxROWS")
    args = ap.parse_args()
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    written = asyncio.run(shoot(args.out, (cols, rows)))
    for p in written:
        print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
    if any(p.suffix == ".svg" for p in written):
        print("no SVG converter (pip install cairosvg, or apt-get install librsvg2-bin): SVGs only",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
