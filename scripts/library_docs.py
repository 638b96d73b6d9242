"""Write docs/library.md from the docstrings of the library API, so the reference cannot drift from the
code: `.venv/bin/python scripts/library_docs.py` (tests/test_docs.py fails when the file is stale)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poolui import errors  # noqa: E402
from poolui.client import PoolClient  # noqa: E402
from poolui.control import Control, EventFeed  # noqa: E402
from poolui.core.manager import PoolManager  # noqa: E402
from poolui.pool_file import load_config  # noqa: E402

OUT = ROOT / "docs" / "library.md"
INTRO = """# The library

Generated from the docstrings by `scripts/library_docs.py`; do not edit by hand.

```python
import asyncio
from poolui import PoolManager, load_config

async def main() -> None:
    async with PoolManager(load_config("config/local.toml")) as mgr:   # warms every pool on start
        await mgr.warm_up(timeout=30)
        claim = await mgr.claim("web", timeout=10)    # Claim: id, url, expires_at, warm, latency
        print(claim.url)
        snap = await mgr.snapshot("web")              # state, members, metrics
        await mgr.release("web", claim.id)            # single use: the sandbox is terminated

asyncio.run(main())
```

`PoolManager` runs the pools in this process; `PoolClient` reaches the pools of a `poolui serve`. Both meet
one contract, `poolui.control.Control` (mypy checks it; `tests/test_contract.py` runs one suite against
both), so code written against `Control` works with either. `poolui.connect.open_control()` picks one the
way the console does.
"""


def _signature(obj: object, name: str) -> str:
    if isinstance(obj, property):
        return name
    sig = str(inspect.signature(obj)).replace("'", "")  # type: ignore[arg-type]
    sig = sig.replace("(self, ", "(").replace("(self)", "()")
    prefix = "async " if inspect.iscoroutinefunction(obj) else ""
    return f"{prefix}{name}{sig}"


def _entry(name: str, obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return f"### `{_signature(obj, name)}`\n\n{doc}\n"


def _class(title: str, cls: type, names: list[str]) -> str:
    parts = [f"## {title}\n", (inspect.getdoc(cls) or "") + "\n"]
    for n in names:
        parts.append(_entry(n, inspect.getattr_static(cls, n)))
    return "\n".join(parts)


def render() -> str:
    verbs = [n for n in vars(Control) if not n.startswith("_")]
    lifecycle = ["__init__", "start", "stop", "warm_up", "pool"]
    parts = [
        INTRO,
        _entry("load_config", load_config),
        _class("PoolManager: the pools in this process", PoolManager, lifecycle + verbs),
        _class("PoolClient: the pools of a server", PoolClient, ["__init__", "aclose", "ping", *verbs]),
        _class("EventFeed: what events() returns", EventFeed, ["aclose"]),
        "## Errors\n\nEvery error is a `poolui.errors.PoolError` with a stable `code` (it travels over HTTP and "
        "the client raises the same type):\n",
        "\n".join(f"- `{cls.__name__}` (`{code}`, HTTP {cls.http_status}): {inspect.getdoc(cls) or ''}".rstrip(": ")
                  for code, cls in errors.ERRORS_BY_CODE.items()) + "\n",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}")
