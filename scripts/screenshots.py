"""Screenshots of the console for the README and docs/console.md: screenshots/*.png (and the SVGs).

It runs the real thing: the pool of config/local.toml embedded (local sandboxes, Python HTTP servers) in a
temporary state directory, claims two sandboxes so the in-use tab has rows, and drives the console headless
with Pilot: the dashboard, a terminate confirmation, the resize dialog and the help screen. Everything it
started is stopped before it exits.

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poolui.core.manager import PoolManager  # noqa: E402
from poolui.pool_file import DEFAULT_CONFIG, load_config  # noqa: E402
from poolui.tui.app import PoolApp  # noqa: E402
from poolui.tui.screens.confirm import ConfirmScreen  # noqa: E402
from poolui.tui.screens.help import HelpScreen  # noqa: E402
from poolui.tui.screens.resize import ResizeScreen  # noqa: E402

FONT = "DejaVu Sans Mono"


def to_png(svg: Path) -> Path | None:
    text = svg.read_text()
    # Fira Code is rarely installed; the fallback then is a proportional face. A monospace face keeps cells square.
    text = re.sub(r'font-family: "?Fira Code"?, monospace', f'font-family: "{FONT}", monospace', text)
    text = re.sub(r"local\(\"FiraCode-[A-Za-z]+\"\)", f'local("{FONT}")', text)
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


async def shoot(out: Path, size: tuple[int, int]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (once, before the app runs)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="poolui-shots-") as tmp:
        data = tomllib.loads(DEFAULT_CONFIG.read_text())
        data["server"] = {"state_dir": str(Path(tmp) / "state"), "listen": "127.0.0.1:0"}
        path = Path(tmp) / "local.toml"
        path.write_bytes(tomli_w.dumps(data).encode())
        cfg = load_config(path)
        async with PoolManager(cfg, state_dir=cfg.state_dir) as mgr:
            pool = next(iter(cfg.pools))
            await mgr.warm_up(60)
            await mgr.claim(pool, claim_key="ci-job-4411")
            await mgr.claim(pool)
            await mgr.warm_up(60)
            app = PoolApp(mgr, source="config/local.toml")
            async with app.run_test(size=size) as pilot:
                await until(pilot, lambda: app.current is not None and app.current.ready >= 3
                            and app.current.counts.get("claimed") == 2, 30, "a warm pool")
                # A few seconds of history, so the trends and the event log have something to show.
                for _ in range(4):
                    await pilot.pause(1.0)

                async def save(name: str) -> None:
                    await pilot.pause()
                    svg = out / f"{name}.svg"
                    svg.write_text(app.export_screenshot(title=f"poolui: {name}"))
                    written.append(to_png(svg) or svg)

                await pilot.press("4")
                await until(pilot, lambda: len(app.table().rows) >= 5, 10, "the all tab")
                await save("dashboard")
                await pilot.press("1", "home", "space", "space", "t")
                await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 10, "the confirmation")
                await save("confirm")
                await pilot.press("n", "escape")
                await pilot.press("r")
                await until(pilot, lambda: isinstance(app.screen, ResizeScreen), 10, "the resize dialog")
                await save("resize")
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.dashboard, 10, "the dashboard")
                await pilot.press("question_mark")
                await until(pilot, lambda: isinstance(app.screen, HelpScreen), 10, "the help screen")
                await save("help")
    return written


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
