"""The simulator: a claim trace replayed through the real engine on virtual time (issue 27).

`poolui --headless simulate` answers "how big should this pool be?": it replays arrivals and hold times
through a real PoolManager (in-memory store, the `instant` provider with create times drawn from a
distribution) on poolui.virtual_time, once with the pool's autoscaler and once per fixed target, and says
what each costs in misses, waits, creates and idle sandbox-hours.

Modules: trace (read and write traces), synthetic (reproducible traces), createtime (create-time
distributions), replay (one run), accounting (sandbox-seconds from events), sweep (many runs), chart (text
and SVG), trace_events (a trace from a pool's events). The verb is poolui/headless/simulate.py.

This file imports nothing: the headless parser (built for `check` too) reads the synthetic kinds here.
"""

SYNTHETIC_KINDS = ("poisson", "diurnal", "bursty", "bursty-diurnal")
