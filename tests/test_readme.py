"""The README's examples run as written: every ```python block as a program against a real embedded pool,
and every ```sh block, in order, in one shell that has done what the README says first (`source
.venv/bin/activate`), as a new user would type them. A block that must not run (it installs packages, opens
the interactive console, or is the test suite itself) is marked by the line before it:
`<!-- not run: why -->`; that list is kept small.

Both run with their own XDG_STATE_HOME and XDG_CONFIG_HOME (the README's paths must follow them), and the
shell in a network namespace of its own, so the README's 127.0.0.1:8765 is never a developer's server.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_fixtures import sandbox_processes, sweep, until

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (.+) -->$")
RUN = ("sh", "python")
MAX_NOT_RUN = 3


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, 1-based
    not_run: str | None  # the marker's reason


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the `not run` marker of the line before it, if any."""
    lines = text.splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = NOT_RUN.match(lines[i - 1]) if i else None
        found.append(Block(fence.group(1), "\n".join(lines[i + 1:end]), i + 1, marker.group(1) if marker else None))
        i = end + 1
    return found


BLOCKS = blocks(README.read_text())


def runnable(lang: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang == lang and b.not_run is None]


def environment(tmp_path: Path) -> dict[str, str]:
    """A fresh user's: nothing of poolui's in the environment, state and config in directories of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POOLUI_", "VIRTUAL_ENV"))}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               PYTHONWARNINGS="default")
    return env


def test_every_marker_names_a_block_and_few_are_not_run() -> None:
    lines = README.read_text().splitlines()
    markers = [n for n, line in enumerate(lines) if line.startswith("<!-- not run")]
    for n in markers:
        assert NOT_RUN.match(lines[n]) and n + 1 < len(lines) and FENCE.match(lines[n + 1]), \
            f"README.md:{n + 1}: a `not run` marker must say why and stand right before a fenced block"
    not_run = [b for b in BLOCKS if b.not_run]
    assert all(b.lang in RUN for b in not_run), "only sh and python blocks are run, so only they are marked"
    assert len(not_run) <= MAX_NOT_RUN, f"keep the examples runnable: {[(b.line, b.not_run) for b in not_run]}"
    assert runnable("sh") and runnable("python")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("block", runnable("python"), ids=lambda b: f"README.md:{b.line}")
def test_python_examples_run(block: Block, tmp_path: Path) -> None:
    env = environment(tmp_path)
    script = tmp_path / "example.py"
    script.write_text(block.code + "\n")
    r = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=240)
    state = tmp_path / "state" / "poolui"
    try:
        assert r.returncode == 0, f"README.md:{block.line} failed:\n{r.stdout}\n{r.stderr}"
        assert "Warning" not in r.stderr and "never awaited" not in r.stderr, r.stderr
        assert r.stdout.strip(), "an example shows what it did"
        assert not sandbox_processes(state), "the example left sandboxes running"
    finally:
        sweep(state)


def shell_prefix() -> list[str]:
    """A network namespace of the shell's own (as root), so 127.0.0.1:8765 is the README's server only."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        return ["unshare", "--net"]
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8765)) == 0:
            pytest.skip("127.0.0.1:8765 is taken here and no network namespace can be made (not root)")
    return []


def shell_script() -> str:
    parts = ["set -euo pipefail", "ip link set lo up 2>/dev/null || true", f"cd {ROOT}",
             "source .venv/bin/activate"]
    for b in runnable("sh"):
        parts += [f"echo '### README.md:{b.line}' >&2", b.code]
    return "\n".join(parts) + "\n"


@pytest.mark.timeout(600)
def test_shell_examples_run_in_order(tmp_path: Path) -> None:
    env = environment(tmp_path)
    script = tmp_path / "readme.sh"
    script.write_text(shell_script())
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    state = tmp_path / "state" / "poolui"
    # Output to files, not pipes: a server left by a failing block would hold a pipe open until the timeout.
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen([*shell_prefix(), "bash", str(script)], cwd=tmp_path, env=env, stdout=o, stderr=e,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=540)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever a failed block left in the shell's session
            except ProcessLookupError:
                pass
            proc.wait()

            def swept() -> bool:  # the server keeps its sandboxes when stopped (on_shutdown = "keep")
                sweep(state)
                return not sandbox_processes(state)

            until(swept, 30, "the kept sandboxes to go")
    stdout, stderr = out.read_text(), err.read_text()
    where = stderr.rsplit("### ", 1)[-1].splitlines()[0] if "### " in stderr else "?"
    assert rc == 0, f"{where} failed (exit {rc}):\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert "command not found" not in stderr and "usage:" not in stderr, stderr
    assert f"token: {state / 'token'}" in stdout + stderr  # where serve wrote it, which the README reads
    assert '"ok":true' in stdout and "POOLUI " in stdout and "drained" in stdout
    assert "Linux" in stdout and "released" in stdout
