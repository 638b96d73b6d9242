"""The keys that change what is seen, never a pool: filter, sort, refresh rate, tabs, pools, help, quit.
Each binding sits on its action (poolui/tui/keys.py)."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual import work
from textual.markup import escape
from textual.widgets import Input, OptionList, TabbedContent

from ..connect import Keep
from ..sim.whatif import ClaimsSeen
from . import view
from .connection import faster, interval_text, slower
from .feed import Feed
from .keys import Keys
from .messages import EventsArrived
from .screens.detail import DetailScreen
from .screens.help import HelpScreen, KeyHelp
from .screens.overview import OverviewScreen
from .screens.quit import QuitScreen
from .screens.whatif import WhatIfScreen
from .widgets.member_table import MemberTable
from .widgets.pool_table import PoolTable

KEYS = Keys()
OVERVIEW_KEYS = Keys()  # the overview's own (poolui/tui/app.py `Overview`)
HELP_INTRO = ("[b]poolui[/]: pools of warm sandboxes. Tabs show ready, creating and in-use sandboxes; "
              "[b]enter[/] opens one, [b]↑↓ pgup pgdn home end[/] move, [b]←→[/] (or [b]h l[/]) show the columns "
              "a narrow terminal hides (› and ‹ in the titles say where), [b]1-4[/] switch tabs, "
              "[b][ ][/] switch pools, [b]o[/] shows them all.")


class Navigation(Feed):
    """Filter, sort, tabs, pools, refresh rate, help and quit."""

    keep_on_exit: Keep = "nothing"  # embedded: what launch.py leaves running once the console has quit

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.claims_seen = ClaimsSeen()  # every pool's claims, for the what-if: more than the events kept

    def on_events_arrived(self, msg: EventsArrived) -> None:
        """The claims the events end are kept for the what-if (Feed's handler keeps the events themselves)."""
        self.claims_seen.feed(msg.events)

    @KEYS.bind("slash", "Filter", id="filter",
               tooltip="Filter the tables by id, state, URL, health, claim key or reason")
    def action_filter(self) -> None:
        """Open the filter line."""
        filter_input = self.dashboard.query_one("#filter", Input)
        filter_input.display = True
        filter_input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """The tables follow the filter as it is typed."""
        if event.input.id == "filter":
            self.state.filter_text = event.value.strip()
            self.show_table()
            self.update_status()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter keeps the filter (or closes an empty one) and goes back to the table."""
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.display = False
            self.table().focus()

    @KEYS.bind("s", "Sort", id="sort", tooltip="Sort by the next column: age, TTL, id, state, health")
    def action_sort(self) -> None:
        """Sort by the next column."""
        self.sort_by(self.state.next_sort())

    @KEYS.bind("S", "Reverse", id="reverse", show=False, tooltip="Reverse the sort order")
    def action_reverse_sort(self) -> None:
        """Reverse the sort order."""
        self.state.reverse = not self.state.reverse
        self.show_table()
        self.update_status()

    def sort_by(self, key: str) -> None:
        """Sort the tables by one column (the palette's "Sort by ...")."""
        self.state.sort_key = key
        self.show_table()
        self.update_status()

    @KEYS.bind("plus,equals_sign", "Rate", id="faster", key_display="+/-",
               tooltip="Refresh more often (+) or less often (-)")
    def action_faster(self) -> None:
        """Refresh more often."""
        self.set_refresh(faster(self.refresh_interval))

    @KEYS.bind("minus", "Slower", id="slower", key_display="-", show=False, tooltip="Refresh less often")
    def action_slower(self) -> None:
        """Refresh less often."""
        self.set_refresh(slower(self.refresh_interval))

    def set_refresh(self, interval: float) -> None:
        """Change the refresh interval; the next fetch follows it."""
        self.refresh_interval = interval
        self.update_header()
        self.notify(f"refreshing every {interval_text(interval)}", timeout=2)
        if self.conn.ok():
            self.schedule_fetch(interval)

    @KEYS.bind("question_mark", "Help", id="help", key_display="?", tooltip="This list of keys")
    def action_help(self) -> None:
        """Every key of the dashboard, with why a dimmed one is disabled."""
        keys = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            b = active.binding
            # Ours all have ids; the rest are Textual's scrolling and focus keys, summed up in the intro.
            if b.id in (None, "slower") or b.action in seen:  # "-" is listed with "+"
                continue
            seen.add(b.action)
            action = b.action.removeprefix("app.").split("(")[0]
            keys.append(KeyHelp(self.get_key_display(b), b.description, b.tooltip or "", active.enabled,
                                self.why_disabled(action)))
        keys.append(KeyHelp("ctrl+p", "Commands", "The command palette: every action, pool switching, sorting",
                            True))
        self.push_screen(HelpScreen(keys, HELP_INTRO))

    @KEYS.bind("q", "Quit", id="quit",
               tooltip="Quit (embedded: asks first whether to keep or terminate claimed sandboxes)")
    def action_quit(self) -> None:  # type: ignore[override]
        """Quit with exit code 0 (also ctrl+c and the palette's Quit). An embedded console stops its pools:
        with sandboxes claimed it first asks whether to keep them running, terminate them, or stay."""
        if isinstance(self.screen, QuitScreen):
            return  # already asking: a second ctrl+c does not answer for the user
        if not self.control.embedded:
            self.exit(0)  # the server's pools go on; nothing here to stop
            return
        self.ask_before_quitting()

    @work(group="quit", exclusive=True, exit_on_error=False, description="quit")
    async def ask_before_quitting(self) -> None:
        """Quit the embedded console; with claimed sandboxes, only after asking what becomes of them."""
        try:
            snaps = await self.control.list_pools(members=True)
        except Exception:  # cannot tell what is claimed: keep whatever is, rather than kill it unasked
            self.exit_keeping_claimed(0)
            return
        claimed = {s.name: ids for s in snaps if (ids := [m.id for m in s.members if m.state == "claimed"])}
        if not claimed:
            self.exit(0)
            return
        others = sum(s.counts.get(k, 0) for s in snaps for k in ("creating", "starting", "ready"))
        state_dir = getattr(self.control, "state_dir", None)
        answer = await self.push_screen_wait(QuitScreen(claimed, others, str(state_dir) if state_dir else None))
        if answer == "keep":
            self.exit_keeping_claimed(0)
        elif answer == "terminate":
            self.keep_on_exit = "nothing"
            self.exit(0)

    def exit_keeping_claimed(self, code: int) -> None:
        """Exit, leaving the claimed sandboxes of embedded pools running for the next start to adopt (the
        rest are terminated). Also what a closed terminal or a `kill` does (launch.py): with nobody there to
        ask, the answer that can be undone is the one taken."""
        self.keep_on_exit = "claimed"
        self.exit(code)

    @KEYS.bind("escape", "Clear", id="clear", show=False, tooltip="Close the filter, then clear marks")
    def action_clear(self) -> None:
        """Close the filter if it is open, else clear the marks."""
        filter_input = self.dashboard.query_one("#filter", Input)
        if filter_input.display:
            filter_input.value = ""
            filter_input.display = False
            self.table().focus()
        elif self.state.marks:
            self.state.marks.clear()
            self.show_table()
        self.update_status()

    def clear_all(self) -> None:
        """Clear the filter and every mark (the palette's "Clear marks and filter")."""
        filter_input = self.dashboard.query_one("#filter", Input)
        filter_input.value = ""
        filter_input.display = False
        self.state.marks.clear()
        self.show_table()
        self.update_status()

    @KEYS.bind("ctrl+r", "Refresh now", id="refresh_now", show=False, tooltip="Fetch a snapshot now")
    def action_refresh_now(self) -> None:
        """Fetch a snapshot now."""
        self.fetch()

    def action_cycle_pool(self, step: int) -> None:
        """Show the previous (-1) or next (1) pool of the file."""
        name = self.state.step_pool(step)
        if name is not None:
            self.switch_pool(name)

    # In the footer where there is room (at 80 columns there is not: the switcher's title and the help say it).
    @KEYS.bind("o", "Pools", id="overview", tooltip="Every pool on one screen: state, sizes, waits, hit rate, "
               "latency, failures (enter opens one)")
    def action_overview(self) -> None:
        """Show the pools overview (from a pool's view)."""
        if not isinstance(self.screen, OverviewScreen):
            self.push_screen(self.make_overview())
        self.paint_overview()

    def make_overview(self) -> OverviewScreen:
        """The overview screen; the App gives it its keys."""
        return OverviewScreen()

    @OVERVIEW_KEYS.bind("o,escape", "Pool view", id="overview.back", key_display="o",
                        tooltip="Back to the pool under the cursor's view (enter) or the last one shown")
    def action_pool_view(self) -> None:
        """Leave the overview for the last pool shown."""
        if isinstance(self.screen, OverviewScreen):
            self.pop_screen()

    def on_overview_screen_open(self, event: OverviewScreen.Open) -> None:
        """Enter on a pool in the overview: that pool's view."""
        self.switch_pool(event.pool)
        self.action_pool_view()

    @OVERVIEW_KEYS.bind("s", "Sort", id="overview.sort", tooltip="Order the pools by the next column: file "
                        "order, state, ready of target, waiting, hit rate, p99, create failures")
    def action_sort_pools(self) -> None:
        """Order the overview by its next column."""
        self.state.next_pool_sort()
        self.paint_overview()

    @OVERVIEW_KEYS.bind("S", "Reverse", id="overview.reverse", show=False, tooltip="Reverse the pools' order")
    def action_reverse_pools(self) -> None:
        """Reverse the overview's order."""
        self.state.pool_reverse = not self.state.pool_reverse
        self.paint_overview()

    @KEYS.bind("w", "Window", id="window", show=False,
               tooltip="Claims, hit rate and latency over the last 1 or 5 minutes (header, overview, trends)")
    def action_toggle_window(self) -> None:
        """Show the numbers over the other window (1m, 5m)."""
        label = self.state.next_window()
        self.paint_overview()
        self.paint_charts()
        self.update_header()  # the header's hit rate and latency are over the same window
        self.notify(f"claims, hit rate and latency over the last {label}", timeout=2)

    @KEYS.bind("f", "What-if", id="whatif", tooltip="What-if: this pool's own claims replayed at another target "
               "or with autoscaling: predicted hit rate, waits, creates and idle cost, beside its setting now")
    def action_whatif(self) -> None:
        """The what-if on the pool shown, or on the overview's highlighted one."""
        pool = self.screen.query_one(PoolTable).cursor_pool if isinstance(self.screen, OverviewScreen) else None
        pool = pool or self.state.pool
        if pool is None:
            self.notify("no pool yet: waiting for the first snapshot", severity="warning", timeout=3)
            return
        self.push_screen(WhatIfScreen(self.control, pool, self.claims_seen), partial(self.resize_to, pool))

    def resize_to(self, pool: str, target: int | None) -> None:
        """`r` in the what-if: the resize dialog with its target (applied only from there), on the pool's view."""
        if target is None:
            return
        if pool != self.state.pool or isinstance(self.screen, OverviewScreen):
            self.notify(f"to resize {pool} to {target}: open it (enter) and press r", timeout=5)
            return
        why = self.why_disabled("resize")
        if why:
            self.notify(f"r (Resize) is not available: {why}", severity="warning", timeout=3)
            return
        self.run_worker(self.run_action(f"resize({target})"), exit_on_error=False)

    def paint_overview(self) -> None:
        """Repaint the overview if it is shown."""
        if isinstance(self.screen, OverviewScreen):
            link = ""
            if self.conn.state == "disconnected":  # the rows stay as they were last seen
                link = (f"[b $background on $error] DISCONNECTED [/] [$error]{escape(self.conn.error)}; "
                        "showing the last data[/]")
            self.screen.show(self.state, self.conn.source, link)

    def maybe_start_on_overview(self) -> None:
        """Once the pools are known: a file of several pools starts on the overview (unless a pool was
        asked for), one of a single pool on its view."""
        if self.overview_decided or not self.state.pool_names:
            return
        self.overview_decided = True
        if len(self.state.pool_names) > 1 and not self.pool_asked:
            self.action_overview()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A pool picked in the switcher."""
        if event.option_list.id == "pools" and event.option.id:
            self.switch_pool(event.option.id)

    def action_show_tab(self, tab: str) -> None:
        """Show one tab."""
        self.dashboard.query_one("#tabs", TabbedContent).active = f"tab-{tab}"

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab shown (by key or click): paint it and give it the focus."""
        self.state.active_tab = (event.pane.id or "").removeprefix("tab-")
        self.show_table()
        self.table().focus()

    def on_member_table_selected(self, event: MemberTable.Selected) -> None:
        """Enter on a row: the sandbox's details and events."""
        m = self.state.member(event.key)
        if m is not None:
            pool = self.state.pool
            run = None if self.read_only or not pool else (
                lambda member_id, argv: self.control.exec(pool, member_id, argv, timeout=60))
            self.push_screen(DetailScreen(m, self.state.member, self.state.member_events, self.now,
                                          self.state.min_remaining_ttl, run,
                                          "read-only: commands are not run from here"))


KEYS.add("left_square_bracket", "cycle_pool(-1)", "Previous pool", id="prev_pool", show=False, key_display="[",
         tooltip="Switch to the previous pool of the file")
OVERVIEW_KEYS.add("w", "toggle_window", "Window", id="overview.window",
                  tooltip="Claims, hit rate and latency over the last 1 or 5 minutes")
OVERVIEW_KEYS.add("f", "whatif", "What-if", id="overview.whatif",
                  tooltip="What-if on the highlighted pool: its claims replayed at another target or with autoscaling")
KEYS.add("right_square_bracket", "cycle_pool(1)", "Next pool", id="next_pool", show=False, key_display="]",
         tooltip="Switch to the next pool of the file")
for _i, (_tab, (_label, _)) in enumerate(view.TABS.items(), start=1):
    KEYS.add(str(_i), f"show_tab('{_tab}')", _label, id=f"tab_{_tab}", show=False,
             tooltip=f"Show the {_label.lower()} tab")
