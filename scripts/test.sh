#!/usr/bin/env bash
# The whole check: set up, start what the tests need, lint, type-check, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ -x scripts/docker-engine.sh ]; then
  # Docker tests skip themselves (with the reason) when no engine can run here.
  ./scripts/docker-engine.sh || echo "test: no Docker engine; the Docker tests will say why they skip" >&2
fi
.venv/bin/ruff check poolui tests bench scripts
.venv/bin/mypy
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
# Two workers: most tests wait on sandboxes, servers and terminals rather than the CPU, so two halve the
# wall time on two cores. Tests that share something machine-wide (the Docker engine, which one of them
# stops) take turns (tests/conftest.py). POOLUI_TEST_WORKERS=0 runs them in this process.
.venv/bin/python -m pytest -q -n "${POOLUI_TEST_WORKERS:-2}" "$@"
