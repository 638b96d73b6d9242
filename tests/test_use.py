"""Using a claimed sandbox through a real `poolui serve` on real bubblewrap sandboxes: exec streamed over
HTTP, files in and out, a claim's env and files, claim tokens, one-shot runs, and the headless verbs."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from helpers import wait_for
from server_fixtures import Served, pool_table, served

from poolui.client import PoolClient
from poolui.core.model import Claim
from poolui.errors import ClaimEnded, FileNotFound, Forbidden, InvalidRequest, PoolError, Unauthorized
from poolui.sandbox_io import MAX_FILE, ExecChunk, ExecResult, collect

POOL = "web"


@pytest.fixture(scope="module")
def web() -> Iterator[Served]:
    with served({POOL: pool_table(target_ready=2, min_ready=1, max_total=12)}, on_shutdown="terminate") as s:
        yield s


@pytest.fixture
async def claim(web: Served) -> AsyncIterator[tuple[PoolClient, Claim]]:
    async with web.client(timeout=30) as c:
        made = await c.claim(POOL, timeout=30)
        try:
            yield c, made
        finally:
            await c.release(POOL, made.id)


async def test_output_streams_in_pieces_before_the_command_ends(claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    # The command prints, then waits for a file only this test writes once the first line has arrived.
    script = "echo first; while [ ! -e go ]; do sleep 0.01; done; echo second >&2; echo third"
    stream = c.exec(POOL, cl.id, ["sh", "-c", script], timeout=30)
    first = await anext(stream)
    assert first == ExecChunk("stdout", b"first\n")
    assert await c.put_file(POOL, cl.id, "go", b"") == 0
    rest = [item async for item in stream]
    chunks = [i for i in rest if isinstance(i, ExecChunk)]
    assert b"".join(i.data for i in chunks if i.stream == "stderr") == b"second\n"
    assert b"".join(i.data for i in chunks if i.stream == "stdout") == b"third\n"
    assert isinstance(rest[-1], ExecResult) and rest[-1].exit_code == 0 and not rest[-1].timed_out


async def test_exit_codes_signals_and_a_missing_program(claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    assert (await collect(c.exec(POOL, cl.id, ["sh", "-c", "exit 3"]))).exit_code == 3
    killed = await collect(c.exec(POOL, cl.id, ["sh", "-c", "kill -TERM $$"]))
    assert (killed.exit_code, killed.signal) == (None, 15)
    missing = await collect(c.exec(POOL, cl.id, ["no-such-program-here"]))
    assert missing.exit_code == 127 and "no-such-program-here" in missing.error


async def test_a_timeout_kills_the_command_and_its_children_but_not_the_sandbox(
        claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    slow = await collect(c.exec(POOL, cl.id, ["sh", "-c", "sleep 600 & echo $! > bg.pid; sleep 600"], timeout=0.5))
    assert slow.timed_out and slow.signal == 9
    child = (await c.get_file(POOL, cl.id, "bg.pid")).decode().strip()
    gone = await collect(c.exec(POOL, cl.id, ["sh", "-c", f"kill -0 {child}"]))
    assert gone.exit_code != 0, "the background child outlived its command's timeout"
    async with httpx.AsyncClient() as h:
        assert (await h.get(cl.url)).status_code == 200  # the sandbox's own server still answers


async def test_stdin_and_output_that_is_not_text_arrive_as_they_are(claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    data = bytes(range(256)) * 40
    r = await collect(c.exec(POOL, cl.id, ["cat"], stdin=data))
    assert r.ok and r.stdout == data


async def test_output_past_its_cap_is_cut_and_says_so(claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    r = await collect(c.exec(POOL, cl.id, ["sh", "-c", "head -c 100000 /dev/zero"], max_output=1000))
    assert r.ok and r.truncated and len(r.stdout) == 1000


async def test_a_command_cannot_see_the_host(web: Served, claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    token_path = str(web.state_dir / "token")
    r = await collect(c.exec(POOL, cl.id, ["cat", token_path]))
    assert r.exit_code != 0 and web.token.encode() not in r.stdout
    ps = await collect(c.exec(POOL, cl.id, ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]))
    seen = ps.stdout.decode()
    assert "http.server" in seen and "poolui.cli" not in seen and "pytest" not in seen


async def test_paths_that_leave_the_work_directory_are_refused(web: Served, claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    for bad in ("../escape", "/etc/escape", "a/../../escape", "a/../escape"):
        with pytest.raises(InvalidRequest):
            await c.put_file(POOL, cl.id, bad, b"x")
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {web.token}"}) as h:
        for raw in ("%2E%2E/escape", "a/%2E%2E/%2E%2E/escape", "%2Fetc%2Fescape"):  # past any client-side check
            r = await h.put(f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/files/{raw}", content=b"x")
            assert (r.status_code, r.json()["error"]) == (422, "invalid_request"), raw
    outside = web.workdir / "outside"
    outside.mkdir()
    await collect(c.exec(POOL, cl.id, ["ln", "-s", str(outside), "link"]))
    await collect(c.exec(POOL, cl.id, ["ln", "-s", "/etc/hostname", "file-link"]))
    with pytest.raises(InvalidRequest, match="symlink"):
        await c.put_file(POOL, cl.id, "link/evil", b"x")
    with pytest.raises(InvalidRequest, match="symlink"):
        await c.get_file(POOL, cl.id, "file-link")
    assert list(outside.iterdir()) == []
    with pytest.raises(FileNotFound):
        await c.get_file(POOL, cl.id, "never-written")


async def test_an_oversized_upload_is_refused_and_writes_nothing(claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    with pytest.raises(PoolError) as e:
        await c.put_file(POOL, cl.id, "big", b"x" * (MAX_FILE + 1))
    assert "larger than" in str(e.value)
    with pytest.raises(FileNotFound):
        await c.get_file(POOL, cl.id, "big")


async def test_claim_env_and_files_reach_exec_and_the_env_is_shown_nowhere(web: Served) -> None:
    secret = "s3cret-" + os.urandom(6).hex()
    async with web.client(timeout=30) as c:
        cl = await c.claim(POOL, timeout=30, env={"API_KEY": secret},
                           files={"main.py": "import os; print(os.environ['API_KEY'])", "bin.dat": b"\xff\x00"})
        try:
            r = await collect(c.exec(POOL, cl.id, ["python3", "main.py"]))
            assert r.stdout.decode().strip() == secret
            assert await c.get_file(POOL, cl.id, "bin.dat") == b"\xff\x00"
            own = await collect(c.exec(POOL, cl.id, ["printenv", "API_KEY"], env={"API_KEY": "mine"}))
            assert own.stdout == b"mine\n"  # the exec's own env wins
            shown = [str((await c.snapshot(POOL)).to_dict()), str([e.to_dict() for e in await c.recent_events()])]
            async with httpx.AsyncClient(headers={"authorization": f"Bearer {web.token}"}) as h:
                shown.append((await h.get(f"{web.url}/metrics")).text)
        finally:
            await c.release(POOL, cl.id)
    shown.append(web.log_text())
    db = sqlite3.connect(web.state_dir / "poolui.sqlite3")
    shown.append(str(db.execute("SELECT * FROM members").fetchall() + db.execute("SELECT * FROM events").fetchall()))
    db.close()
    assert all(secret not in text for text in shown)
    # nor in any state file as bytes: the database, its WAL, the member rows' journal, a sandbox's directory
    stored = dict(files_now(web.state_dir))
    assert any(p.endswith(".journal") for p in stored) and all(secret.encode() not in b for b in stored.values())


def files_now(root: Path) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every file under root, as it is now: a sandbox's directory may go while it is walked
    (its refill goes on), and what went is not read."""
    for where, _, names in os.walk(root):  # a directory that went is passed over
        for name in names:
            path = os.path.join(where, name)
            try:
                if stat.S_ISREG(os.lstat(path).st_mode):  # not a socket (the agent's) nor a link
                    yield path, Path(path).read_bytes()
            except FileNotFoundError:
                continue


async def test_a_claim_token_opens_its_own_sandbox_and_nothing_else(web: Served) -> None:
    async with web.client(timeout=30) as admin:
        mine = await admin.claim(POOL, timeout=30)
        other = await admin.claim(POOL, timeout=30)
        assert mine.token and mine.token != other.token and mine.token != web.token
        async with PoolClient(web.url, mine.token, timeout=30) as c:
            assert (await collect(c.exec(POOL, mine.id, ["echo", "ok"]))).stdout == b"ok\n"
            assert await c.put_file(POOL, mine.id, "f", b"1") == 1
            assert await c.get_file(POOL, mine.id, "f") == b"1"
            await c.renew(POOL, mine.id, lease=60)
            with pytest.raises(Forbidden):
                await collect(c.exec(POOL, other.id, ["echo", "no"]))
            with pytest.raises(Forbidden):
                await c.snapshot(POOL)
            with pytest.raises(Forbidden):
                await c.terminate(POOL, [other.id])
            with pytest.raises(Forbidden):
                await c.release(POOL, other.id)
            assert await c.release(POOL, mine.id) is True
            with pytest.raises(Unauthorized):  # once the claim is over its token is worth nothing
                await collect(c.exec(POOL, mine.id, ["echo", "late"]))
        async with PoolClient(web.url, "pc_made-up", timeout=30) as c:
            with pytest.raises(Unauthorized):
                await c.release(POOL, other.id)
        await admin.release(POOL, other.id)


async def test_exec_on_a_sandbox_that_is_not_claimed_is_refused(web: Served) -> None:
    async with web.client(timeout=30) as c:
        async def a_ready_one() -> str | None:
            return next((m.id for m in (await c.snapshot(POOL)).members if m.state == "ready"), None)

        ready = await wait_for(a_ready_one, 30, what="a ready sandbox")
        with pytest.raises(InvalidRequest, match="not claimed"):
            await collect(c.exec(POOL, ready, ["true"]))
        cl = await c.claim(POOL, timeout=30)
        await c.release(POOL, cl.id)
        with pytest.raises(ClaimEnded):
            await collect(c.exec(POOL, cl.id, ["true"]))
        with pytest.raises(InvalidRequest, match="argv"):
            await collect(c.exec(POOL, ready, []))


async def test_a_one_shot_run_claims_runs_and_releases(web: Served) -> None:
    async with web.client(timeout=30) as c:
        before = (await c.snapshot(POOL)).metrics.get("terminated", 0)
        r = await collect(c.run(POOL, ["sh", "-c", "cat in.txt; echo $WHO"], env={"WHO": "me"},
                                files={"in.txt": "hello\n"}, claim_timeout=30))
        assert r.ok and r.stdout == b"hello\nme\n"

        async def released() -> bool:
            snap = await c.snapshot(POOL)
            return snap.counts.get("claimed", 0) == 0 and snap.metrics.get("terminated", 0) > before

        await wait_for(released, 30, what="the run's sandbox released and terminated")


def test_headless_exec_run_and_cp(web: Served, tmp_path: pytest.TempPathFactory) -> None:
    claimed = web.headless("claim", "--json")
    assert claimed.returncode == 0, claimed.stderr
    cid = json.loads(claimed.stdout)["id"]
    try:
        r = web.headless("exec", cid, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
        assert (r.returncode, r.stdout, r.stderr.splitlines()[0]) == (7, "out\n", "err")
        local = tmp_path / "up.txt"  # type: ignore[operator]
        local.write_text("uploaded")
        assert web.headless("cp", str(local), f"{cid}:d/up.txt").returncode == 0
        down = web.headless("cp", f"{cid}:d/up.txt", "-")
        assert (down.returncode, down.stdout) == (0, "uploaded")
        assert web.headless("exec", cid, "--cmd-timeout", "0.3", "--", "sleep", "60").returncode == 124
        assert web.headless("exec", cid).returncode == 2  # no command: a usage error
        tree = tmp_path / "tree"  # type: ignore[operator]
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "f.txt").write_text("deep")
        assert web.headless("cp", "-r", str(tree), f"{cid}:up").returncode == 0
        back = tmp_path / "back"  # type: ignore[operator]
        assert web.headless("cp", "-r", f"{cid}:up", str(back)).returncode == 0
        assert (back / "sub" / "f.txt").read_text() == "deep"
    finally:
        web.headless("release", cid)
    one = web.headless("run", "--env", "X=1", "--", "sh", "-c", "echo $X")
    assert (one.returncode, one.stdout) == (0, "1\n")


async def test_a_client_that_goes_away_ends_its_command(web: Served, claim: tuple[PoolClient, Claim]) -> None:
    c, cl = claim
    body = {"argv": ["sh", "-c", "echo $$ > cmd.pid; echo started; sleep 600"]}
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {web.token}"}, timeout=30) as h, \
            h.stream("POST", f"{web.url}/pools/{POOL}/sandboxes/{cl.id}/exec", json=body) as r:
        lines = r.aiter_lines()
        assert json.loads(await anext(lines))["data"] == "started\n"
    # the connection is closed here, mid-command
    pid = (await c.get_file(POOL, cl.id, "cmd.pid")).decode().strip()

    async def ended() -> bool:
        return (await collect(c.exec(POOL, cl.id, ["kill", "-0", pid]))).exit_code != 0

    await wait_for(ended, 15, what="the command of a client that left to be killed")
