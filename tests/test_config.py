"""Pool files: the shipped ones load, every bad case names file, pool, key, value and what is allowed."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from poolui.durations import format_duration, parse_duration
from poolui.errors import ConfigError
from poolui.pool_file import DEFAULT_CONFIG, load_config, preview_pool_sizes, save_pool_sizes

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[server]
listen = "127.0.0.1:9000"

[pools.web]
provider = "local"
command = ["python3", "-m", "http.server", "{port}"]
target_ready = 2
min_ready = 1
max_ready = 4
max_total = 6
ttl = "5m"
min_remaining_ttl = "2m"

[pools.web.readiness]
http = "/"
timeout = "5s"

[pools.other]
provider = "instant"
target_ready = 1
# a comment at the end, which a save must keep
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "pools.toml"
    p.write_text(text)
    return p


def test_shipped_local_pool_is_the_embedded_default() -> None:
    cfg = load_config()
    assert Path(cfg.path or "") == DEFAULT_CONFIG.resolve()
    web = cfg.pools["web"]
    assert web.provider == "local"
    assert web.target_ready == 3
    assert web.ttl == 300 and web.min_remaining_ttl == 120
    assert web.command[:3] == ("python3", "-m", "http.server")


def test_shipped_modal_pool_matches_modals_example() -> None:
    cfg = load_config(ROOT / "config" / "modal.toml")
    (pool,) = cfg.pools.values()
    assert pool.provider == "modal"
    assert (pool.target_ready, pool.ttl, pool.min_remaining_ttl, pool.maintenance_interval) == (3, 300, 120, 120)


def test_good_file_reads_every_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.server.listen == "127.0.0.1:9000"
    web = cfg.pools["web"]
    assert (web.target_ready, web.min_ready, web.max_ready, web.max_total) == (2, 1, 4, 6)
    assert web.readiness.kind == "http" and web.readiness.timeout == 5
    assert cfg.pools["other"].provider == "instant"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("max_total = 6", 'max_total = 6\nflavour = "x"', ["unknown key 'flavour'", "pool 'web'", "allowed keys"]),
        ("target_ready = 2", 'target_ready = "two"', ["'target_ready'", "'two'", "whole number"]),
        ("target_ready = 2", "target_ready = 9", ["target_ready = 9", "min_ready <= target_ready <= max_ready"]),
        ("min_ready = 1", "min_ready = 3", ["min_ready = 3", "min_ready <= target_ready"]),
        ("max_total = 6", "max_total = 3", ["max_ready = 4", "max_total = 3"]),
        ('ttl = "5m"', 'ttl = "1m"', ["ttl = 1m", "min_remaining_ttl = 2m"]),
        ("max_total = 6", 'max_total = 6\non_empty = "block"', ["'on_empty'", "'block'", '"wait", "create", "fail"']),
        ("max_total = 6", 'max_total = 6\nclaim_timeout = "soon"', ["'claim_timeout'", "'soon'", '"500ms"']),
        ('command = ["python3", "-m", "http.server", "{port}"]', "command = []", ["'command'", "list of strings"]),
        ('provider = "local"', 'provider = "k8s"', ["'provider'", "'k8s'", '"local"']),
        ("max_total = 6", "max_total = 6\nttl_jitter = 0.9", ["'ttl_jitter'", "0.9", "from 0.0 to 0.5"]),
        ("max_total = 6", 'max_total = 6\nlimits = { memory = "lots" }', ["'memory'", "'lots'", "256MiB"]),
    ],
)
def test_bad_values_name_file_pool_key_value_and_allowed(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, (part, msg)


def test_probe_with_two_kinds_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('http = "/"', 'http = "/"\ntcp = true'))
    with pytest.raises(ConfigError, match="only one of http, tcp, exec"):
        load_config(path)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[pools.web\n"))
    with pytest.raises(ConfigError, match="cannot read the pool file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"no pools: add at least one \[pools.NAME\]"):
        load_config(write(tmp_path, "[server]\n"))


def test_server_table_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'listen'.*HOST:PORT"):
        load_config(write(tmp_path, GOOD.replace('"127.0.0.1:9000"', '"nowhere"')))


def test_save_keeps_other_pools_and_keys_and_is_atomic(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    save_pool_sizes(path, "web", target_ready=3, min_ready=2, max_ready=4)
    data = tomllib.loads(path.read_text())
    assert data["pools"]["web"]["target_ready"] == 3
    assert data["pools"]["web"]["min_ready"] == 2
    assert data["pools"]["web"]["readiness"] == {"http": "/", "timeout": "5s"}
    assert data["pools"]["other"] == {"provider": "instant", "target_ready": 1}
    assert data["server"] == {"listen": "127.0.0.1:9000"}
    assert load_config(path).pools["web"].target_ready == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.toml"]  # no temp file left


def test_save_changes_only_the_changed_values_and_keeps_every_comment(tmp_path: Path) -> None:
    command = 'command = ["python3", "-m", "http.server", "{port}"]'
    text = GOOD.replace("target_ready = 2", "target_ready = 2   # warm ones, tuned on call").replace(
        command, command + "  # the app")
    path = write(tmp_path, "# the pools of this host\n" + text)
    assert preview_pool_sizes(path, "web", target_ready=3) == [
        "-target_ready = 2   # warm ones, tuned on call", "+target_ready = 3   # warm ones, tuned on call"]
    assert save_pool_sizes(path, "web", target_ready=3) is True
    after = path.read_text()
    assert after == ("# the pools of this host\n" + text).replace("target_ready = 2   #", "target_ready = 3   #")
    before = path.stat().st_mtime_ns
    assert save_pool_sizes(path, "web", target_ready=3, min_ready=1) is False  # nothing to change: not written
    assert path.read_text() == after and path.stat().st_mtime_ns == before


def test_saving_an_impossible_size_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="min_ready <= target_ready <= max_ready"):
        save_pool_sizes(path, "web", target_ready=10)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.toml"]


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200), (7, 7.0)])
def test_durations_round_trip(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "-1s", "", True, -3, "1.5.2s"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="a duration such as"):
        parse_duration(bad)


@pytest.mark.parametrize(("table", "named"), [
    ({"network": "open"}, "network"), ({"seccomp": "yes"}, "seccomp"), ({"limits": {"disk": "1KiB"}}, "disk"),
    ({"local": {"user": ""}}, "user"),
])
def test_isolation_keys_are_checked(table: dict[str, object], named: str) -> None:
    from poolui.pool_file import parse_config

    with pytest.raises(ConfigError, match=named):
        parse_config({"pools": {"p": {"provider": "local", "command": ["true"], **table}}}, "t.toml")


def test_the_default_pool_is_isolated() -> None:
    pool = load_config(DEFAULT_CONFIG).pools["web"]
    assert (pool.network, pool.seccomp, pool.limits.disk) == ("isolated", True, 512 << 20)
