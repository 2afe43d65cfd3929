"""Benchmarks of jwt-revocation against the alternatives, on the real local broker and Redis.

Run ``make bench`` (or ``python -m bench``); ``--quick`` is the smoke test ``make test`` runs,
``--only GROUP`` runs one group of rows. :mod:`bench.harness` holds what every row shares
(interleaved rounds, statistics, the table), :mod:`bench.fixtures` what the rows build on
(the run's broker, Redis, tokens and events), and :mod:`bench.rows` registers every row and
holds one module per group.
"""
