"""The HTTP service over a PoolManager: app factory (app.py), bearer token (auth.py), events stream (sse.py),
Prometheus text (metrics.py) and `poolui serve` with its signal handling (run.py)."""
