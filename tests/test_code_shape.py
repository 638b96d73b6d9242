"""The shape the house keeps, checked by a machine: small modules and functions, and a package that a
plain (non-editable) `pip install .` makes work from any directory."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted((ROOT / "poolui").rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    big = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines (one idea a file): {big}"


def test_no_function_is_over_60_lines() -> None:
    long = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_every_module_says_what_it_is_for() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _modules()
               if p.read_text().strip() and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, f"modules without a docstring: {missing}"


@pytest.mark.timeout(300)
def test_a_plain_install_runs_from_any_directory(tmp_path: Path) -> None:
    """pip install . (not editable) into a fresh venv: the bundled pool file comes with it, so
    `poolui --headless demo` works in a directory that has no config/ at all."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # Dependencies come from the project's own venv (no second download of them); only poolui is built.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # --ignore-installed: without it pip "upgrades" the project's own editable install, uninstalling
    # poolui from the venv every later test runs in.
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                        "--ignore-installed", "--prefix", str(venv), str(ROOT)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (venv / "bin" / "poolui").exists()  # the console script (its #! names the interpreter pip ran on)
    poolui = [str(venv / "bin" / "python"), "-m", "poolui.cli"]
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLUI_")}
    r = subprocess.run([*poolui, "--version"], capture_output=True, text=True, cwd=cwd, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("poolui "), r.stderr
    code = "import poolui, sys; print(poolui.__file__)"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=cwd,
                           env=env, timeout=60).stdout
    assert where.startswith(str(venv)), f"the installed copy was not the one imported: {where}"
    r = subprocess.run([*poolui, "--headless", "demo", "--json"], capture_output=True, text=True, cwd=cwd,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"released": true' in r.stdout and "/poolui/config/local.toml" not in r.stderr
