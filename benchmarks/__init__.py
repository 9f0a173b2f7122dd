"""Benchmarks: scripts that print measured figures (never asserted in tests).

Run them with ``python -m benchmarks [name ...]`` (``make bench`` runs them all); each module
exposes ``main() -> None``.
"""
