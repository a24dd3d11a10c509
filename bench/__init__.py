"""Latency and load benchmarks of the real server, with fixed seeds.

Run by hand, never by pytest (no `test_*.py` here; pyproject's testpaths is `tests`):

    python -m bench            # both, one environment, one combined report
    python -m bench.latency    # sequential per-operation latency + GraphQL-vs-SQL breakdown
    python -m bench.load       # throughput per concurrency level + noisy neighbour

`--database-url` (or env DATABASE_URL) is an ADMIN URL: a throwaway `tenantry_bench_<hex>`
database is created there and dropped afterwards. Without one, an embedded PostgreSQL runs
in a temp dir. Results: docs/benchmarks.md.
"""
