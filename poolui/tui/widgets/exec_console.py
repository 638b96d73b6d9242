"""The detail view's command line: what was typed and what came back, kept per sandbox for the console's
life, so that closing the view (or an Esc meant for the command line) loses nothing.

Output is shown a whole line at a time, stdout plain and stderr in red, each stream with its own partial
line: a chunk of one never glues onto a half line of the other, nor onto the command's echo.
"""

from __future__ import annotations

import codecs
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import ClassVar
from weakref import WeakKeyDictionary

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Input

KEPT_LINES = 2000  # output lines kept per sandbox
KEPT_SESSIONS = 50  # sandboxes whose command line is kept, per console (the least recently used go first)
KEPT_HISTORY = 100
PARTIAL_FLUSH = 4096  # characters of a line without its newline shown as they are, so a long one is seen

STYLES = {"echo": "bold cyan", "stdout": "", "stderr": "red", "ok": "dim", "failed": "yellow"}


@dataclass
class ExecSession:
    """One sandbox's command line: history (oldest first), output lines, and the text being typed."""

    history: list[str] = field(default_factory=list)
    lines: deque[Text] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    draft: str = ""
    running: str | None = None  # the command running now, if one is

    def remember(self, command: str) -> None:
        """Add a command to the history (not twice in a row)."""
        if not self.history or self.history[-1] != command:
            self.history.append(command)
            del self.history[:-KEPT_HISTORY]


_SESSIONS: WeakKeyDictionary[object, OrderedDict[str, ExecSession]] = WeakKeyDictionary()


def session_for(owner: object, member_id: str) -> ExecSession:
    """The session of one sandbox in one console (`owner`: the App), made on first use."""
    sessions = _SESSIONS.setdefault(owner, OrderedDict())
    if member_id not in sessions:
        sessions[member_id] = ExecSession()
        while len(sessions) > KEPT_SESSIONS:
            sessions.popitem(last=False)
    sessions.move_to_end(member_id)
    return sessions[member_id]


def styled(text: str, kind: str) -> Text:
    """One output line in the style of its kind: echo, stdout, stderr, ok or failed (the end line)."""
    return Text(text, style=STYLES[kind], no_wrap=False)


class LineSplitter:
    """Chunks of stdout and stderr in, whole lines out, each stream with its own unfinished line (and its own
    UTF-8 decoder: a character cut between two chunks is put back together)."""

    def __init__(self) -> None:
        self.partial = {"stdout": "", "stderr": ""}
        self.decoders = {k: codecs.getincrementaldecoder("utf-8")(errors="replace") for k in self.partial}

    def feed(self, stream: str, data: bytes) -> list[Text]:
        """The lines this chunk completes (a line over PARTIAL_FLUSH characters is let out unfinished)."""
        kind = "stderr" if stream == "stderr" else "stdout"
        text = self.partial[kind] + self.decoders[kind].decode(data).replace("\r\n", "\n")
        *done, rest = text.split("\n")
        if len(rest) > PARTIAL_FLUSH:
            done, rest = [*done, rest], ""
        self.partial[kind] = rest
        return [styled(line, kind) for line in done]

    def flush(self) -> list[Text]:
        """What is left of unfinished lines, once the command has ended."""
        out = []
        for kind, rest in self.partial.items():
            rest += self.decoders[kind].decode(b"", final=True)
            if rest:
                out.append(styled(rest, kind))
            self.partial[kind] = ""
        return out


class CommandLine(Input):
    """An Input with a history: up and down step through the commands run in this sandbox."""

    BINDINGS: ClassVar = [
        Binding("up", "history(-1)", "Previous command", show=False),
        Binding("down", "history(1)", "Next command", show=False),
    ]

    def __init__(self, session: ExecSession, **kwargs: object) -> None:
        super().__init__(session.draft, **kwargs)  # type: ignore[arg-type]
        self.session = session
        self.position = len(session.history)  # len(history): the draft, not a past command

    def action_history(self, step: int) -> None:
        """Show the previous (-1) or next (1) command; past the newest, the draft again."""
        history = self.session.history
        if self.position == len(history):
            self.session.draft = self.value
        self.position = max(0, min(len(history), self.position + step))
        self.value = history[self.position] if self.position < len(history) else self.session.draft
        self.cursor_position = len(self.value)

    def reset_position(self) -> None:
        """After a command is run: the next up shows it."""
        self.position = len(self.session.history)
        self.session.draft = ""
