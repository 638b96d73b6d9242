"""Copying a claim's URL, and saying "copied" only when it was.

A terminal either takes OSC 52 or drops it without a word (macOS Terminal, the Linux console, tmux without
`set-clipboard`), and nothing comes back to tell which. A clipboard tool on a display (wl-copy, xclip, xsel,
pbcopy) exits 0 only when it copied, so where there is one, its answer is the one reported. OSC 52 is sent
as well: over ssh it is the only way to the operator's own clipboard.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from textual.app import App

# (what must be set for the tool to have a clipboard to write to, the command)
TOOLS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("WAYLAND_DISPLAY", ("wl-copy",)),
    ("DISPLAY", ("xclip", "-selection", "clipboard")),
    ("DISPLAY", ("xsel", "--clipboard", "--input")),
)
TOOL_TIMEOUT = 2.0  # seconds: a clipboard tool that hangs (a display that does not answer) is given up on


@dataclass(frozen=True)
class Copied:
    """The outcome of a copy: `ok` only when a clipboard certainly holds the text; `text` says so."""

    ok: bool
    text: str


def tool_copy(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """Copy with the first clipboard tool that has a display and exits 0; its name, or None."""
    env = os.environ if env is None else env
    tools = [(need, argv) for need, argv in TOOLS if env.get(need)]
    if sys.platform == "darwin":
        tools.insert(0, ("", ("pbcopy",)))
    for _, argv in tools:
        exe = shutil.which(argv[0], path=env.get("PATH"))
        if exe is None:
            continue
        try:
            # Output to /dev/null, not a pipe: xclip and wl-copy leave a child serving the selection, which
            # would hold a pipe open for as long as it serves.
            done = subprocess.run([exe, *argv[1:]], input=text.encode(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=TOOL_TIMEOUT, env=dict(env), check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return argv[0]
    return None


def osc52(app: App[object], text: str) -> bool:
    """Send `text` to the terminal's clipboard (OSC 52); False when there is no terminal to send it to."""
    app.copy_to_clipboard(text)
    return not app.is_headless


def outcome(tool: str | None, terminal: bool) -> Copied:
    """What to tell the operator, given what the copy could do."""
    if tool:
        return Copied(True, f"copied to the clipboard ({tool})")
    if terminal:
        return Copied(False, "sent to the terminal's clipboard (OSC 52), not confirmed: some terminals, and tmux "
                             "without set-clipboard, drop it; if it is not there, select the URL above")
    return Copied(False, "could not copy: no clipboard here; select the URL above to copy it")
