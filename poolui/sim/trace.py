"""Claim traces: when each claim arrives and how long it is held, read from CSV or JSON lines and written back.

CSV: one claim a line, `arrival,hold` in seconds from the trace's start (or durations such as "1.5s",
"2m"); an optional header line `arrival,hold`; `#` comments and blank lines are skipped; a comment
`# start = 2026-12-07T00:00:00+00:00` gives the wall time the trace begins at (schedules need it), and
`# duration = 24h` how long it covers (else until its last claim ends).
JSON lines: one object a line, {"arrival": 12.5, "hold": 30}; a first object {"start": ISO, "duration": S}
says the same as those comments. A file whose first non-blank character is `{` is JSON lines.

Arrivals need not be sorted (they are, once read). Every error names the file, the line and what is allowed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..durations import parse_duration
from ..errors import ConfigError

MAX_CLAIMS = 10_000_000
MAX_SECONDS = 366 * 86400.0  # a year of arrivals, a year's hold at most
ALLOWED_ROW = "'arrival,hold': seconds from the trace's start (or durations like \"1.5s\", \"2m\"), not negative"


@dataclass
class Trace:
    """Claims as (arrival, hold) seconds, sorted by arrival; `start` the wall time of arrival 0."""

    claims: list[tuple[float, float]]
    start: float = 0.0
    duration: float | None = None  # seconds the trace covers; None: until its last claim ends
    meta: dict[str, Any] = field(default_factory=dict)  # how it was made (synthetic kind, seed, ...)

    def __post_init__(self) -> None:
        self.claims.sort(key=lambda c: c[0])

    @property
    def horizon(self) -> float:
        """How long a replay runs: the stated duration, else until the last claim is released."""
        if self.duration is not None:
            return self.duration
        return max((a + h for a, h in self.claims), default=0.0)


def _number(text: str, what: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        try:
            v = parse_duration(text.strip())
        except ValueError:
            raise ConfigError(f"{where}: {what} = {text.strip()!r} is not a number; expected {ALLOWED_ROW}") from None
    if not math.isfinite(v) or not 0 <= v <= MAX_SECONDS:
        raise ConfigError(f"{where}: {what} = {text.strip()!r} is not allowed; expected {ALLOWED_ROW}, "
                          f"at most {MAX_SECONDS:g}")
    return v


def _wall(text: str, where: str) -> float:
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: start = {text.strip()!r} is not an ISO 8601 time such as "
                          f"2026-12-07T00:00:00+00:00") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _comment(line: str, trace: Trace, where: str) -> None:
    body = line.lstrip("#").strip()
    key, eq, value = body.partition("=")
    if not eq:
        return
    if key.strip() == "start":
        trace.start = _wall(value, where)
    elif key.strip() == "duration":
        trace.duration = _number(value, "duration", where)


def _csv_line(line: str, where: str) -> tuple[float, float] | None:
    cells = [c.strip() for c in line.split(",")]
    if [c.lower() for c in cells] == ["arrival", "hold"]:
        return None
    if len(cells) != 2:
        raise ConfigError(f"{where}: {len(cells)} field{'s' if len(cells) != 1 else ''} ({line.strip()!r}); "
                          f"expected {ALLOWED_ROW}")
    return _number(cells[0], "arrival", where), _number(cells[1], "hold", where)


def _json_line(line: str, trace: Trace, where: str) -> tuple[float, float] | None:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not JSON ({e.msg}); expected an object like {{\"arrival\": 12.5, "
                          f"\"hold\": 30}}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: {type(obj).__name__} is not allowed; expected an object like "
                          f"{{\"arrival\": 12.5, \"hold\": 30}}")
    if "arrival" not in obj and set(obj) <= {"start", "duration"}:
        if "start" in obj:
            trace.start = _wall(str(obj["start"]), where)
        if "duration" in obj:
            trace.duration = _number(str(obj["duration"]), "duration", where)
        return None
    unknown = sorted(set(obj) - {"arrival", "hold"})
    missing = sorted({"arrival", "hold"} - set(obj))
    if unknown or missing:
        what = f"unknown key {', '.join(map(repr, unknown))}" if unknown else f"no {', '.join(map(repr, missing))}"
        raise ConfigError(f"{where}: {what}; expected the keys 'arrival' and 'hold' ({ALLOWED_ROW})")
    for k in ("arrival", "hold"):
        if isinstance(obj[k], bool) or not isinstance(obj[k], int | float | str):
            raise ConfigError(f"{where}: {k} = {obj[k]!r} is not allowed; expected {ALLOWED_ROW}")
    return _number(str(obj["arrival"]), "arrival", where), _number(str(obj["hold"]), "hold", where)


def parse_trace(text: str, name: str) -> Trace:
    """A Trace from a file's text; ConfigError names `name`, the line and what is allowed."""
    trace = Trace([])
    is_json = text.lstrip().startswith("{")
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{n}"
        if not line.strip() or (not is_json and line.lstrip().startswith("#")):
            if line.lstrip().startswith("#"):
                _comment(line, trace, where)
            continue
        row = _json_line(line, trace, where) if is_json else _csv_line(line, where)
        if row is not None:
            trace.claims.append(row)
            if len(trace.claims) > MAX_CLAIMS:
                raise ConfigError(f"{where}: more than {MAX_CLAIMS} claims; split the trace")
    if not trace.claims:
        raise ConfigError(f"{name}: no claims; expected one a line, {ALLOWED_ROW}")
    trace.claims.sort(key=lambda c: c[0])
    return trace


def read_trace(path: str | Path) -> Trace:
    """A trace file read and checked (see the module's text)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"trace {p}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"trace {p}: not text (expected CSV or JSON lines)") from None
    return parse_trace(text, str(p))


def format_trace(trace: Trace, as_json: bool = False) -> str:
    """The trace as CSV (or JSON lines) that read_trace gives back the same."""
    start = datetime.fromtimestamp(trace.start, UTC).isoformat()
    made = ", ".join(f"{k} = {v}" for k, v in trace.meta.items())
    if as_json:
        head = {"start": start, **({"duration": trace.duration} if trace.duration is not None else {})}
        rows = [json.dumps(head)] + [json.dumps({"arrival": round(a, 6), "hold": round(h, 6)})
                                     for a, h in trace.claims]
        return "\n".join(rows) + "\n"
    lines = [f"# poolui claim trace{': ' + made if made else ''}", f"# start = {start}"]
    if trace.duration is not None:
        lines.append(f"# duration = {trace.duration:g}")
    lines.append("arrival,hold")
    lines += [f"{a:.6f},{h:.6f}" for a, h in trace.claims]
    return "\n".join(lines) + "\n"
