"""Schema-driven fuzzing of every endpoint of a real `poolui serve` (schemathesis over the served OpenAPI
document): valid and invalid inputs, no 5xx, responses match the documented schemas, no sandbox lost.

The instant provider is used so that thousands of claims cost nothing; the HTTP layer under test is the
same. GET /events is a never-ending stream and is exercised in test_server_e2e.py instead.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from server_fixtures import pool_table, served

BUDGET = 40.0  # seconds for the whole fuzz run; split across operations and modes
EXAMPLES = 100


def _tame(case: Any, real_pool: bool) -> Any:
    """Point most cases at the real pool and keep waits short; everything else stays as generated."""
    if real_pool and "pool" in (case.path_parameters or {}):
        case.path_parameters["pool"] = "p"
    body = case.body if isinstance(getattr(case, "body", None), dict) else None
    if body is not None:
        for key in ("timeout",):
            if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
                body[key] = min(body[key], 0.2)
        if body.get("wait") is True:
            body["timeout"] = 0.2 if not isinstance(body.get("timeout"), str) else body["timeout"]
    return case


class OutOfTime(Exception):
    """This operation's time slice is used up."""


def _runner(strategy: Any, op_deadline: float, label: str, auth: dict[str, str], failures: list[str],
            handed_out: set[str]) -> Any:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > op_deadline:
            raise OutOfTime  # ends the run at once (no shrink phase); examples drawn only to be skipped cost time
        response = case.call(headers=auth, timeout=10)
        # Documented status, content type and body schema; 5xx is judged below (a 504 for a wait the caller
        # asked for is the documented answer). Unknown query parameters are ignored, as HTTP APIs do, so
        # schemathesis' "negative data must be rejected" does not apply to them; and sizes have rules across
        # fields (min <= target <= max) that a schema cannot say, so valid-looking sizes may get a 422.
        case.validate_response(response, headers=auth, excluded_checks=[
            not_a_server_error, negative_data_rejection, positive_data_acceptance])
        timed_out = response.status_code == 504 and '"error":"' in response.text and (
            response.json().get("error") in ("claim_timeout", "warm_up_timeout"))  # asked to wait; waited
        if response.status_code >= 500 and not timed_out:
            failures.append(f"{label}: {response.status_code} for {case.as_curl_command()}: {response.text[:200]}")
        if response.status_code == 200 and label.endswith("/claim"):
            handed_out.add(response.json()["id"])

    return run


def test_fuzz_every_endpoint_no_5xx_no_lost_sandbox() -> None:
    pools = {"p": pool_table("instant", target_ready=3, min_ready=0, max_ready=20, max_total=200,
                             on_empty="fail", claim_timeout="200ms")}
    with served(pools) as s:
        auth = {"Authorization": f"Bearer {s.token}"}
        schema = schemathesis.openapi.from_url(s.url + "/openapi.json", headers=auth)
        handed_out: set[str] = set()
        seen_ops: list[str] = []
        failures: list[str] = []
        operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]  # Err fails here
        operations = [op for op in operations if op.path != "/events"]
        per_op = BUDGET / (2 * len(operations))
        for op in operations:
            # Each operation gets its own time slice (examples past it return at once), so a slow machine
            # fuzzes each one less but never leaves one out.
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                op_deadline = time.monotonic() + per_op
                strategy = st.tuples(op.as_strategy(generation_mode=mode), st.booleans()).map(
                    lambda pair: _tame(*pair))

                run = _runner(strategy, op_deadline, op.label, auth, failures, handed_out)
                try:
                    run()
                except (Unsatisfiable, OutOfTime):  # nothing to make invalid (an operation without inputs)
                    pass
                seen_ops.append(f"{op.label} {mode.value}")
        assert not failures, "\n".join(failures[:10])
        assert len(seen_ops) == 2 * len(operations), seen_ops

        # No lost sandbox: everything claimed now was handed to us, counts add up, the pool still serves.
        snap = httpx.get(f"{s.url}/pools/p", headers=auth).json()
        claimed = {m["id"] for m in snap["members"] if m["state"] == "claimed"}
        assert claimed <= handed_out
        assert sum(snap["counts"].values()) == len(snap["members"])
        assert snap["waiting"] == 0
        httpx.post(f"{s.url}/pools/p/resume", headers=auth)
        httpx.post(f"{s.url}/pools/p/resize", headers=auth, json={"target": 1, "min_ready": 0, "max_ready": 5})
        r = httpx.post(f"{s.url}/pools/p/claim", headers=auth, json={"timeout": 5})
        assert r.status_code in (200, 409), r.text  # 409 only if the fuzz left it drained
        assert "Traceback" not in s.log_text()
