"""The ranges every duration and size may take, stated once for the pool file, requests and docs.

A value outside its range is refused with an error naming it; these keep values that parse but cannot
work (an infinite claim timeout, a TTL of eleven thousand years, 10^17 sandboxes) out of the engine.
"""

from __future__ import annotations

DAY = 86400.0
MAX_TTL = 7 * DAY  # a sandbox's hard lifetime
MAX_WAIT = 3600.0  # claim_timeout, readiness and probe timeouts, one request's wait
MAX_INTERVAL = DAY  # maintenance, health and readiness intervals
MIN_LEASE, MAX_LEASE = 0.1, DAY  # claim leases
MAX_SIZE = 100_000  # sandboxes in one pool
MAX_CONCURRENT_CREATES = 1000
MAX_EXECS = 1024  # concurrent execs in one sandbox (each is a process and a connection to it)
MAX_CREATE_RETRIES = 1000
MAX_PIDS = 1 << 22
MAX_MEMORY = 1 << 40  # 1 TiB
