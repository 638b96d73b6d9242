"""The simulator's report: a table of figures, the trade-off as a text chart for the terminal, and as SVG.

The trade-off is hit rate and idle sandbox-hours against the target: each fixed target a point on both
curves; the autoscaler a diamond at its time-averaged setpoint (it has no one target), so one glance says
whether it sits above the hit-rate curve and below the idle curve.
"""

from __future__ import annotations

import math
from html import escape

from .replay import Result

BAR = 24


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.1f}s"


def table(rows: list[Result], goal: float) -> list[str]:
    """One line per replay: hit rate, waits, creates, idle sandbox-hours (and cost when priced)."""
    priced = any(r.idle_cost is not None for r in rows)
    head = (f"{'':<12} {'hit rate':>9} {'wait p50':>9} {'wait p99':>9} {'timeouts':>8} {'creates':>8} {'idle h':>9} "
            f"{'unclaimed h':>11}")
    lines = [head + (f" {'idle cost':>10}" if priced else "") + f" {'setpoint':>9}"]
    for r in rows:
        mark = "*" if r.hit_rate >= goal else " "
        line = (f"{r.label:<12} {r.hit_rate * 100:>8.2f}%{mark}{_seconds(r.wait(50)):>8} {_seconds(r.wait(99)):>9} "
                f"{r.timed_out + r.refused:>8} {r.creates:>8} {r.idle_hours:>9.1f} {r.unclaimed_s / 3600:>11.1f}")
        if priced:
            line += f" {r.idle_cost or 0:>10.2f}"
        line += f" {r.mean_setpoint:>9.1f}" + (f" (max {r.max_setpoint})" if r.target is None else "")
        lines.append(line)
    lines.append(f"* meets the goal, a hit rate of {goal * 100:g}% or more; a timed-out claim waited its whole "
                 "claim_timeout;")
    lines.append("idle h: sandbox-hours ready and not claimed (what the idle cost is of); unclaimed h: also creating "
                 "and terminating")
    return lines


def _bar(value: float, top: float) -> str:
    filled = 0 if top <= 0 else round(BAR * max(0.0, min(value, top)) / top)
    return "█" * filled + "·" * (BAR - filled)


def text_chart(rows: list[Result], goal: float) -> list[str]:
    """Hit rate and idle sandbox-hours as bars, a row per replay (the autoscaler's last)."""
    top = max((r.idle_hours for r in rows), default=0.0)
    lines = [f"{'':<12} {'hit rate (0-100%)':<{BAR + 9}}   idle sandbox-hours (0-{top:.1f})"]
    for r in rows:
        lines.append(f"{r.label:<12} {_bar(r.hit_rate, 1.0)} {r.hit_rate * 100:6.2f}%   "
                     f"{_bar(r.idle_hours, top)} {r.idle_hours:.1f}")
    goal_at = round(BAR * goal)
    lines.append(f"{'':<12} {' ' * goal_at}^ goal {goal * 100:g}%")
    return lines


W, H, L, R, T, B = 760, 440, 70, 80, 50, 60  # size and margins


def svg(rows: list[Result], goal: float, title: str) -> str:
    """The trade-off as an SVG document (no dependencies: written by hand)."""
    fixed = sorted((r for r in rows if r.target is not None), key=lambda r: r.target or 0)
    auto = [r for r in rows if r.target is None]
    xmax = max([r.target or 0 for r in fixed] + [r.mean_setpoint for r in auto] + [1])
    hmin = min([r.hit_rate for r in rows] + [goal]) * 100
    hlo = max(0.0, (hmin // 10) * 10)
    imax = max([r.idle_hours for r in rows] + [1e-9]) * 1.05

    def x(v: float) -> float:
        return L + (W - L - R) * v / xmax

    def yh(hit: float) -> float:
        return T + (H - T - B) * (100 - hit * 100) / max(100 - hlo, 1e-9)

    def yi(idle: float) -> float:
        return T + (H - T - B) * (1 - idle / imax)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
           f'font-size="12"><rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    out += _axes(x, yh, yi, xmax, hlo, imax)
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{yh(goal):.1f}" y2="{yh(goal):.1f}" stroke="#1f77b4" '
               f'stroke-dasharray="4 4"/><text x="{L + 4}" y="{yh(goal) - 4:.1f}" fill="#1f77b4">goal '
               f'{goal * 100:g}%</text>')
    for color, y, val in (("#1f77b4", yh, "hit_rate"), ("#ff7f0e", yi, "idle_hours")):
        pts = [(x(r.target or 0), y(getattr(r, val))) for r in fixed]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts]
        for r in auto:
            cx, cy = x(r.mean_setpoint), y(getattr(r, val))
            out.append(f'<path d="M{cx:.1f},{cy - 7:.1f} L{cx + 7:.1f},{cy:.1f} L{cx:.1f},{cy + 7:.1f} '
                       f'L{cx - 7:.1f},{cy:.1f} Z" fill="white" stroke="{color}" stroke-width="2"/>')
    out += _legend()
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(span: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over span."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _ticks(lo: float, hi: float) -> list[float]:
    step = nice_step(hi - lo)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _axes(x: object, yh: object, yi: object, xmax: float, hlo: float, imax: float) -> list[str]:
    assert callable(x) and callable(yh) and callable(yi)
    out = [f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#1f77b4"/>',
           f'<line x1="{W - R}" y1="{T}" x2="{W - R}" y2="{H - B}" stroke="#ff7f0e"/>']
    for tx in _ticks(0, xmax):
        out.append(f'<text x="{x(tx):.1f}" y="{H - B + 16}" text-anchor="middle">{tx:g}</text>')
    for hit in _ticks(hlo, 100):
        out.append(f'<text x="{L - 6}" y="{yh(hit / 100) + 4:.1f}" text-anchor="end" fill="#1f77b4">{hit:g}%</text>')
    for idle in _ticks(0, imax):
        out.append(f'<text x="{W - R + 6}" y="{yi(idle) + 4:.1f}" fill="#ff7f0e">{idle:g}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 20}" text-anchor="middle">target (ready sandboxes); '
               f'the autoscaler at its mean setpoint</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" fill="#1f77b4" transform="rotate(-90 16 {(T + H - B) / 2})" '
               f'text-anchor="middle">warm-hit rate</text>')
    out.append(f'<text x="{W - 16}" y="{(T + H - B) / 2}" fill="#ff7f0e" '
               f'transform="rotate(90 {W - 16} {(T + H - B) / 2})" text-anchor="middle">idle sandbox-hours</text>')
    return out


def _legend() -> list[str]:
    """Bottom right, inside the plot: both curves rise to the right, so that corner is free."""
    y, lx = H - B - 56, W - R - 230
    return [f'<rect x="{lx - 10}" y="{y - 12}" width="226" height="56" fill="white" stroke="#ccc"/>',
            f'<circle cx="{lx}" cy="{y}" r="3" fill="#1f77b4"/><text x="{lx + 8}" y="{y + 4}">hit rate, fixed '
            f'target</text>',
            f'<circle cx="{lx}" cy="{y + 16}" r="3" fill="#ff7f0e"/><text x="{lx + 8}" y="{y + 20}">idle '
            f'sandbox-hours, fixed target</text>',
            f'<path d="M{lx},{y + 25} L{lx + 6},{y + 32} L{lx},{y + 39} L{lx - 6},{y + 32} Z" fill="white" '
            f'stroke="black"/><text x="{lx + 8}" y="{y + 36}">the autoscaler</text>']
