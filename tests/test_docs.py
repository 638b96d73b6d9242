"""The docs that are made from the code stay in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_library_reference_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import library_docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    made = library_docs.render()
    assert (ROOT / "docs" / "library.md").read_text() == made, \
        "docs/library.md is stale: run .venv/bin/python scripts/library_docs.py"


def test_every_public_method_of_the_library_api_is_documented() -> None:
    code = ("import inspect; from poolui.core.manager import PoolManager; from poolui.client import PoolClient\n"
            "for cls in (PoolManager, PoolClient):\n"
            "    for n, f in vars(cls).items():\n"
            "        if (not n.startswith('_') or n == '__init__') and callable(f) and not inspect.getdoc(f):\n"
            "            print(cls.__name__ + '.' + n)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and r.stdout == "", f"undocumented: {r.stdout}{r.stderr}"
