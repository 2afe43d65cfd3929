"""Benchmarks of jwt-revocation against the alternatives, on the real local broker and Redis.

Run ``make bench`` (or ``python -m bench``); ``--quick`` is the smoke test ``make test`` runs.
"""
