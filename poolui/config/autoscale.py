"""[pools.NAME.autoscale]: a pool that sizes itself from its claim rate (core/autoscale.py does it).

    [pools.web.autoscale]
    min = 2                  # the setpoint's floor and ceiling (within min_ready..max_ready)
    max = 40
    hit_rate = 0.99          # the share of claims that find a ready sandbox ...
    max_wait = "0s"          # ... or wait at most this long for one
    window = "60s"           # the claim rate it follows
    panic_window = "6s"      # a burst: the rate over this window at panic_threshold times what it has
    panic_threshold = 2.0
    scale_down_delay = "5m"  # it goes down only to the most the window's rate needed over this long
    max_step_up = 0          # sandboxes added to the setpoint at once (0: no limit)
    max_step_down = 0        # taken off at once (0: no limit)
    ready_time = "5s"        # the mean create-to-ready time until the pool has measured its own
    schedule = [{ cron = "45 8 * * 1-5", min = 10, for = "9h" }, { cron = "0 12 * * *", min = 4 }]
    timezone = "UTC"         # the schedule's clock (an IANA name)

A schedule's rule raises the setpoint's floor to its `min` from each time its cron fires, for `for` (or,
without it, until another rule fires): so a pool is warm before a known peak, whatever the claim rate says
yet. When several are in force, the one that fired last counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import bounds as b
from ..durations import format_duration
from ..errors import ConfigError
from .cron import Cron
from .reader import TableReader

KEYS = ("min", "max", "hit_rate", "max_wait", "window", "panic_window", "panic_threshold", "scale_down_delay",
        "max_step_up", "max_step_down", "ready_time", "schedule", "timezone")


@dataclass(frozen=True)
class ScheduleRule:
    """From each time `cron` fires, for `hold` seconds (None: until another rule fires), the setpoint is
    at least `min`."""

    cron: Cron
    min: int
    hold: float | None = None


@dataclass(frozen=True)
class AutoscaleConfig:
    """How an autoscaled pool moves its setpoint. The defaults are the field's: Knative's 60 s stable and
    6 s panic windows at twice the capacity, and the Kubernetes HPA's 5-minute scale-down stabilisation."""

    min: int | None = None  # None: the pool's min_ready
    max: int | None = None  # None: the pool's max_ready
    hit_rate: float = 0.99
    max_wait: float = 0.0
    window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    scale_down_delay: float = 300.0
    max_step_up: int = 0
    max_step_down: int = 0
    ready_time: float = 5.0
    schedule: tuple[ScheduleRule, ...] = ()
    timezone: str = "UTC"


def parse_autoscale(t: TableReader, min_ready: int, max_ready: int) -> AutoscaleConfig:
    """The table read and checked against the pool's own sizes; ConfigError names what is wrong."""
    d = AutoscaleConfig()
    cfg = AutoscaleConfig(
        min=t.opt_int("min", 0, b.MAX_SIZE), max=t.opt_int("max", 0, b.MAX_SIZE),
        hit_rate=t.float_("hit_rate", d.hit_rate, 0.5, 0.9999),
        max_wait=t.duration("max_wait", d.max_wait, maximum=b.MAX_WAIT),
        window=t.duration("window", d.window, minimum=1.0, maximum=b.DAY),
        panic_window=t.duration("panic_window", d.panic_window, minimum=1.0, maximum=b.DAY),
        panic_threshold=t.float_("panic_threshold", d.panic_threshold, 1.0, 100.0),
        scale_down_delay=t.duration("scale_down_delay", d.scale_down_delay, maximum=b.DAY),
        max_step_up=t.int_("max_step_up", d.max_step_up, maximum=b.MAX_SIZE),
        max_step_down=t.int_("max_step_down", d.max_step_down, maximum=b.MAX_SIZE),
        ready_time=t.duration("ready_time", d.ready_time, minimum=0.001, maximum=b.MAX_WAIT),
        schedule=_schedule(t), timezone=_timezone(t),
    )
    t.finish(KEYS, sort=False)
    lo = min_ready if cfg.min is None else cfg.min
    hi = max_ready if cfg.max is None else cfg.max
    if not min_ready <= lo <= hi <= max_ready:
        raise ConfigError(f"{t.where}: min = {lo}, max = {hi} are not allowed: expected min_ready ({min_ready}) "
                          f"<= min <= max <= max_ready ({max_ready})")
    for rule in cfg.schedule:
        if not lo <= rule.min <= hi:
            raise ConfigError(f"{t.where}: schedule '{rule.cron.text}' min = {rule.min} is not allowed: expected "
                              f"{lo} to {hi} (the autoscale min and max)")
    if cfg.panic_window > cfg.window:
        raise ConfigError(f"{t.where}: panic_window = {format_duration(cfg.panic_window)} is not allowed: "
                          f"expected at most window = {format_duration(cfg.window)} (a burst is seen over the "
                          "shorter window)")
    return cfg


def _schedule(t: TableReader) -> tuple[ScheduleRule, ...]:
    rules = t.get("schedule", [])
    example = 'a list of tables like { cron = "0 9 * * 1-5", min = 10 }'
    if not isinstance(rules, list) or len(rules) > 100:
        raise t.error("schedule", rules, example + ", at most 100")
    out = []
    for i, raw in enumerate(rules):
        if not isinstance(raw, dict):
            raise t.error("schedule", raw, example)
        r = TableReader(raw, f"{t.where}.schedule[{i}]")
        text = r.str_("cron", "", nonempty=True)
        try:
            cron = Cron.parse(text)
        except ValueError as e:
            raise r.error("cron", text, f"a cron expression: {e}") from None
        hold = r.duration("for", 0.0, minimum=60.0, maximum=b.DAY * 7) if r.has("for") else None
        out.append(ScheduleRule(cron, r.int_("min", 0, maximum=b.MAX_SIZE), hold))
        r.finish(("cron", "min", "for"), sort=False)
    return tuple(out)


def _timezone(t: TableReader) -> str:
    name = t.str_("timezone", "UTC", nonempty=True)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise t.error("timezone", name, 'an IANA time zone name, e.g. "UTC" or "Europe/Berlin"') from None
    return name
