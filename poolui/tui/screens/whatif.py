"""`f`: what-if on a pool: its own recorded claims replayed at another target, or with autoscaling, next to
its setting now: warm-hit rate, claim waits, creates, idle sandbox-hours and what they cost.

The inputs come over the control contract (poolui/sim/whatif.py), the replays are the simulator's
(poolui/sim/replay.py) on virtual time. They run in one thread, one at a time, off the console's loop, so the
console never freezes: the target picked last first, then the pool's own setting, then a small sweep around
the smallest target that should meet the goal, and the autoscaler, each shown as it comes. The screen changes
nothing by itself: `r` takes the target picked to the resize dialog, where the operator applies it.
"""

from __future__ import annotations

import threading
from collections.abc import Set as AbstractSet

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from ...control import Control
from ...sim import whatif as sim
from ...sim.createtime import CreateTime
from ...sim.replay import Result
from ...sim.sweep import MAX_TARGET, Runner, curve, first_guess
from ...sim.whatif import AUTOSCALE, MIN_CLAIMS, Choice, ClaimsSeen, Inputs, gather, predict
from .. import view
from ..base import describe
from ..widgets.pool_table import money

BAR = 12
WIDEN = 3  # sweeps past the first that all miss the goal, each up to twice the largest target


class TargetInput(Input):
    """The target's field: digits only, so the screen's + - and a still act while it has the focus."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        """Only digits are typed into it (Textual otherwise hides every printable key's binding)."""
        return character is not None and character.isdigit()


class WhatIfScreen(ModalScreen[int | None]):
    """The what-if dialog of one pool."""

    DEFAULT_CSS = """
    WhatIfScreen #whatif-box {
        width: 80; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: round $accent; border-title-color: $accent; border-title-style: bold; background: $surface;
    }
    WhatIfScreen.-short #whatif-box { height: 100%; }
    WhatIfScreen #whatif-pick { height: 1; margin-top: 1; }
    WhatIfScreen #whatif-pick.hidden { display: none; }
    WhatIfScreen #whatif-target { width: 7; height: 1; border: none; padding: 0 1; }
    WhatIfScreen #whatif-compare { margin-top: 1; height: auto; }
    WhatIfScreen #whatif-sweep-box { height: auto; margin-top: 1; }
    WhatIfScreen.-short #whatif-sweep-box { height: 1fr; }
    WhatIfScreen #whatif-hint { color: $foreground-muted; height: auto; }
    """
    # Under 40 lines the box takes the whole height and the sweep scrolls; taller, it is as tall as it needs.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    # Priority: the target's field takes digits only; these keys act from anywhere on the screen.
    BINDINGS = [
        Binding("escape", "close", "Close", id="whatif.close"),
        Binding("plus,equals_sign", "step(1)", "Target +1", id="whatif.more", priority=True, key_display="+"),
        Binding("minus", "step(-1)", "Target -1", id="whatif.less", priority=True, key_display="-"),
        Binding("a", "autoscale", "Autoscale", id="whatif.autoscale", priority=True),
        Binding("r", "apply", "Resize to this", id="whatif.apply", priority=True),
    ]

    class Replayed(Message):
        """One replay done (posted from the replaying thread)."""

        def __init__(self, choice: Choice, result: Result | None, error: str = "") -> None:
            super().__init__()
            self.choice, self.result, self.error = choice, result, error

    def __init__(self, control: Control, pool: str, seen: ClaimsSeen) -> None:
        super().__init__(classes="dialog")
        self.control, self.pool, self.seen = control, pool, seen
        self.inputs: Inputs | None = None
        self.choice: Choice | None = None  # what the user looks at; None until the inputs are read
        self.results: dict[Choice, Result] = {}
        self.errors: dict[Choice, str] = {}  # replays that failed, and why
        self.wake = threading.Event()  # the replaying thread waits on it for a new choice
        self.failed = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="whatif-box") as box:
            box.border_title = f"what-if: pool {self.pool}"
            box.border_subtitle = "esc to close"
            yield Static("reading the pool's claims…", id="whatif-source")
            with Horizontal(id="whatif-pick", classes="hidden"):
                yield Label("try target ")
                yield TargetInput("", placeholder="auto", id="whatif-target", restrict=r"\d{0,4}", max_length=4)
                yield Label(" [dim]type it, or + - to step, a: autoscale[/]", id="whatif-keys")
            yield Static("", id="whatif-compare")
            with VerticalScroll(id="whatif-sweep-box"):
                yield Static("", id="whatif-sweep")
            yield Static(apply_hint(self.pool), id="whatif-hint")

    def on_mount(self) -> None:
        self.read_inputs()

    @work(exclusive=True, group="whatif-inputs", exit_on_error=False, description="read the pool's claims")
    async def read_inputs(self) -> None:
        """Snapshot, events and pool file over the contract; then the replays start."""
        try:
            inputs = await gather(self.control, self.pool, self.seen)
        except Exception as e:  # an unknown pool, a lost server: said on the screen, which stays
            self.failed = f"cannot read pool '{self.pool}': {describe(e)}"
            self.query_one("#whatif-source", Static).update(f"[$error]{escape(self.failed)}[/]")
            return
        self.inputs = inputs
        self.query_one("#whatif-source", Static).update(source_text(inputs))
        if not inputs.enough:
            self.query_one("#whatif-compare", Static).update(too_few_text(inputs, self.pool))
            return
        self.choice = inputs.current
        pick = self.query_one("#whatif-pick")
        pick.remove_class("hidden")
        field = self.query_one("#whatif-target", Input)
        field.value = "" if inputs.current == AUTOSCALE else str(inputs.current)
        field.focus()
        field.select_all()  # a number typed replaces it
        self.repaint()
        self.replay()

    @work(thread=True, exclusive=True, group="whatif-replays", exit_on_error=False, description="what-if replays")
    def replay(self) -> None:
        """The replays, one at a time, most wanted first, until the screen goes."""
        worker, inputs = get_current_worker(), self.inputs
        assert inputs is not None
        runner = Runner(inputs.plan)
        mine: dict[Choice, Result] = {}  # this thread's own: the screen's dict changes under it
        failed: set[Choice] = set()
        while not worker.is_cancelled:
            self.wake.clear()
            choice = next_choice(self.choice, inputs, mine.keys() | failed, mine)
            if choice is None:
                self.wake.wait(0.25)  # nothing left: until a new choice (or the screen closing)
                continue
            try:
                mine[choice] = predict(runner, inputs, choice)
            except Exception as e:  # said on the screen; the other choices still replay
                failed.add(choice)
                self.post_message(self.Replayed(choice, None, describe(e)))
                continue
            self.post_message(self.Replayed(choice, mine[choice]))

    def on_what_if_screen_replayed(self, msg: Replayed) -> None:
        """A replay came (or failed): keep it and repaint."""
        if msg.result is not None:
            self.results[msg.choice] = msg.result
        else:
            self.errors[msg.choice] = msg.error
        self.repaint()

    def on_unmount(self) -> None:
        self.wake.set()  # the thread sees the cancellation at once instead of after its wait

    def pick(self, choice: Choice) -> None:
        """Show this choice (replayed next if it has not been)."""
        if self.inputs is None or not self.inputs.enough:
            return
        self.choice = choice
        self.wake.set()
        self.repaint()

    def on_input_changed(self, event: Input.Changed) -> None:
        """A typed target is replayed as it is typed (the thread takes the latest)."""
        if event.value.isdigit() and event.value != str(self.choice):
            self.pick(min(int(event.value), MAX_TARGET))

    def action_step(self, step: int) -> None:
        """One more or one fewer ready sandboxes (from the autoscaler: from its mean setpoint)."""
        if self.inputs is None:
            return
        base = self.choice
        if not isinstance(base, int):
            auto = self.results.get(AUTOSCALE)
            base = round(auto.mean_setpoint) if auto is not None else self.inputs.plan.cfg.target_ready
        target = max(0, min(MAX_TARGET, base + step))
        field = self.query_one("#whatif-target", Input)
        field.value = str(target)
        field.select_all()  # a number typed next replaces it
        self.pick(target)

    def action_autoscale(self) -> None:
        """The autoscaler instead of a fixed target."""
        self.query_one("#whatif-target", Input).value = ""
        self.pick(AUTOSCALE)

    def action_close(self) -> None:
        """Close the what-if (the replays stop)."""
        self.dismiss(None)

    def action_apply(self) -> None:
        """Close with the target picked: the console opens the resize dialog with it, to confirm there."""
        if isinstance(self.choice, int):
            self.dismiss(self.choice)
        elif self.choice == AUTOSCALE:
            self.notify(f"autoscaling is set in the pool file: [pools.{self.pool}.autoscale]", timeout=5,
                        markup=False)

    def repaint(self) -> None:
        """The comparison and the sweep, from the replays done so far."""
        if self.inputs is None or self.choice is None:
            return
        pending = sum(1 for c in self.wanted() if c not in self.results and c not in self.errors)
        compared: Table | str = compare(self.inputs, self.choice, self.results)
        if self.choice in self.errors:
            compared = f"[$error]the replay of {label(self.choice)} failed: {escape(self.errors[self.choice])}[/]"
        self.query_one("#whatif-compare", Static).update(compared)
        self.query_one("#whatif-sweep", Static).update(sweep_text(self.inputs, self.choice, self.results, pending))

    def wanted(self) -> list[Choice]:
        """The choices the screen would show (for the 'replaying' count)."""
        assert self.inputs is not None and self.choice is not None
        return [self.choice, self.inputs.current, *sweep_targets(self.inputs, self.results), AUTOSCALE]


def apply_hint(pool: str) -> str:
    """How to make a choice real: this screen changes nothing."""
    return (f"[b]r[/]: resize to this target (you confirm it in the resize dialog) · autoscaling is "
            f"[b]\\[pools.{escape(pool)}.autoscale][/] in the pool file · [b]esc[/] closes")


def next_choice(choice: Choice | None, inputs: Inputs, done: AbstractSet[Choice],
                results: dict[Choice, Result]) -> Choice | None:
    """What to replay next: the pick, the pool's own setting, the sweep, the autoscaler, widening the
    sweep while it all misses the goal (None: all done)."""
    for c in (choice, inputs.current, *sweep_targets(inputs, results), AUTOSCALE):
        if c is not None and c not in done:
            return c
    return None


def sweep_targets(inputs: Inputs, results: dict[Choice, Result]) -> list[int]:
    """Targets around the smallest that should meet the goal by the claim rate (sweep.first_guess), from
    0; wider while every one replayed misses the goal."""
    ks = [0, *curve(first_guess(inputs.plan), [], points=6)]
    for _ in range(WIDEN):
        fixed = [r for c, r in results.items() if isinstance(c, int)]
        if not all(k in results for k in ks) or any(r.hit_rate >= inputs.plan.goal for r in fixed):
            break
        ks.append(min(MAX_TARGET, 2 * max(ks)))
    return ks


def label(choice: Choice) -> str:
    return "autoscale" if choice == AUTOSCALE else f"target {choice}"


def source_text(inputs: Inputs) -> str:
    """Where the prediction comes from: the claims, their span and rate, the create time, the price."""
    plan = inputs.plan
    n, span = len(plan.trace.claims), plan.trace.horizon
    cap = (f" [dim](the last {sim.MAX_CLAIMS} within {view.duration(sim.MAX_SPAN)}; {inputs.left_out} older left "
           "out)[/]"
           if inputs.left_out else "")
    price = f"idle priced at {money(plan.price)}/sandbox-h" if plan.price is not None else "no price_per_hour set"
    now = label(inputs.current) + (" (set by a resize, until resume)" if inputs.sizing == "manual" else "")
    return (f"[b]{n}[/] claim{'s' if n != 1 else ''} over {view.duration(span)} "
            f"({n / max(span, 1.0):.2g}/s) from the pool's events{cap}\n"
            f"create time {create_text(plan.create)}\nnow: [b]{now}[/] · {price}")


def create_text(ct: CreateTime) -> str:
    """The create-to-ready time replayed, in the console's units, and where it came from."""
    a, b = view.millis(ct.a), view.millis(ct.b)
    shape = {"fixed": a, "uniform": f"{a} to {b}"}.get(ct.kind, f"p50 {a}, p95 {b}")
    return f"{shape} [dim]({escape(ct.source)})[/]"


def too_few_text(inputs: Inputs, pool: str) -> str:
    """Said instead of a prediction when the pool has served too few claims yet."""
    n = len(inputs.plan.trace.claims)
    return (f"[$warning]too few claims to predict anything:[/] {n} recorded for pool '{escape(pool)}', at least "
            f"{MIN_CLAIMS} needed. Claims count from the pool's event log and while this console runs: open "
            "the what-if again once it has served more.")


def _row(r: Result | None, what: str, span_h: float) -> str:
    if r is None:
        return "…"
    if what == "hit":
        return f"{r.hit_rate * 100:.1f}%"
    if what == "wait":
        return f"{view.millis(r.wait(50))} / {view.millis(r.wait(99))}"
    if what == "creates":
        return str(r.creates)
    if what == "idle":
        return f"{r.idle_hours:.2f}"
    if what == "missed":
        return str(r.timed_out + r.refused)
    cost = r.idle_cost
    return "—" if cost is None else f"{money(cost)} ({money(cost / max(span_h, 1e-9))}/h)"


def compare(inputs: Inputs, choice: Choice, results: dict[Choice, Result]) -> Table:
    """The pool's setting now beside the choice: what each would have given on the same claims."""
    table = Table(box=None, padding=(0, 2, 0, 0), show_header=True, header_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column(f"now: {label(inputs.current)}", justify="right", no_wrap=True)
    table.add_column(f"what-if: {label(choice)}", justify="right", no_wrap=True, style="bold")
    mine, theirs = results.get(inputs.current), results.get(choice)
    span_h = inputs.plan.trace.horizon / 3600
    rows = [("warm-hit rate", "hit"), ("claim wait p50 / p99", "wait"), ("creates", "creates"),
            ("idle sandbox-h", "idle"), ("idle cost", "cost")]
    if any(r is not None and r.timed_out + r.refused for r in (mine, theirs)):
        rows.insert(2, ("timed out or refused", "missed"))
    for name, what in rows:
        table.add_row(name, _row(mine, what, span_h), _row(theirs, what, span_h))
    if AUTOSCALE in (choice, inputs.current):
        table.caption = Text(f"autoscale: {inputs.autoscale_from}", style="dim")
        table.caption_justify = "left"
    return table


def bar(value: float, top: float) -> str:
    filled = 0 if top <= 0 else round(BAR * max(0.0, min(value, top)) / top)
    return "█" * filled + "·" * (BAR - filled)


def sweep_text(inputs: Inputs, choice: Choice, results: dict[Choice, Result], pending: int) -> Text:
    """Every replay so far, fixed targets by size then the autoscaler: hit rate and idle sandbox-hours as
    bars; the pick and the setting now marked, * where the goal is met."""
    goal = inputs.plan.goal
    order = sorted((c for c in results if isinstance(c, int)), key=int) + [c for c in results if c == AUTOSCALE]
    top = max((r.idle_hours for r in results.values()), default=0.0)
    out = Text(f"{'':<4}{'':>10}  {'hit rate':<20}  idle sandbox-h\n", style="bold")
    for c in order:
        r = results[c]
        mark = "→" if c == choice else "now" if c == inputs.current else ""
        name = "autoscale" if c == AUTOSCALE else f"target {c}"
        met = "*" if r.hit_rate >= goal else " "
        line = (f"{mark:<4}{name:>10}  {bar(r.hit_rate, 1.0)} {r.hit_rate * 100:5.1f}%{met}"
                f"  {bar(r.idle_hours, top)} {r.idle_hours:.2f}")
        if c == AUTOSCALE:
            line += f" [mean {r.mean_setpoint:.1f}]"
        out.append(line + "\n", style="bold" if c == choice else "")
    tail = f"* meets the goal, {goal * 100:g}% warm"
    if pending:
        tail += f" · replaying {pending} more…"
    out.append(tail, style="dim")
    return out
