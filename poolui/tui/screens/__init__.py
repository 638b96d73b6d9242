"""Modal screens: confirmation, resize, claim result, maintenance report, sandbox detail, help."""
