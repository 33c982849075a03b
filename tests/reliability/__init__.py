"""Fault-injection and hostile-input tests: each attacks one promise (see docs/reliability.md)."""
