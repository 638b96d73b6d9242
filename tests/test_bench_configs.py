"""The pool tables the benchmarks run still pass the pool file's checks (a bound tightened in the
config must not leave a benchmark that stops at its first line)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from poolui.pool_file import parse_config

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize("members", [100, 1000, 10_000])
def test_tui_tick_pools_parse(members: int) -> None:
    import tui_tick

    cfg = tui_tick.config(members)
    assert cfg.pools["bench"].max_ready == members


def test_docker_vs_local_pools_parse() -> None:
    import docker_vs_local

    for name in docker_vs_local.POOLS:
        assert docker_vs_local.config(name).pools[name].provider in ("local", "docker")


def test_http_claims_pool_parses() -> None:
    import http_claims

    assert parse_config(tomllib.loads(http_claims.POOL), "bench").pools["bench"].max_total == 1024


def test_scale_pools_parse() -> None:
    import scale

    for n in (64, 1000, 10_000):
        assert parse_config({"pools": {"p": scale.table(n)}}, "bench").pools["p"].target_ready == n
