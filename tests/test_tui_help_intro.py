"""The help screen's intro says how to reach the columns a narrow terminal hides (←/→, or h/l), at 80x24 where
they are hidden, and the keys it names do what it says."""

from __future__ import annotations

from test_tui_small import SMALL, lines, settled, started
from tui_support import screen_text, until

from poolui.tui.screens.help import HelpScreen


async def test_the_help_intro_names_the_sideways_keys_at_80x24() -> None:
    app, _, _ = await started()
    async with app.run_test(size=SMALL) as pilot:
        await settled(app, pilot)
        await pilot.press("4")  # the all tab: more columns than 80 columns hold
        await until(pilot, lambda: len(app.table().rows) == 20, 5, "the all tab")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "the help screen")
        await pilot.pause()
        intro = " ".join(" ".join(line.strip(" │") for line in lines(app)[:10]).split())
        assert "←→ (or h l) show the columns a narrow terminal hides" in intro, screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), 5, "the help closed")
        title = next(line for line in lines(app) if line.lstrip().startswith("ID "))
        assert title.rstrip().endswith("›") and "FOR" not in title  # hidden columns, as the intro says
        await pilot.press("l", "l", "l", "l", "l")
        await until(pilot, lambda: "FOR" in next(line for line in lines(app) if line.lstrip().startswith("ID ")),
                    5, "l to reach the last column")
        await pilot.press("h", "h", "h", "h", "h")
        await until(pilot, lambda: "‹" not in screen_text(app), 5, "h back to the first columns")
