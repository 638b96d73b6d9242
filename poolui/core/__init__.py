"""The engine: pools, their members and the rules that keep them correct. No UI, no HTTP."""
