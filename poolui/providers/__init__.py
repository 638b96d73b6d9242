"""Where sandboxes really run: the Provider contract (base), the registry of providers, the helpers they
share (common, probes), and one package per provider of the same shape (options, provider, errors, helpers):
local/, docker/, modal/, and instant.py (bookkeeping only, for tests, benchmarks and the simulator)."""
