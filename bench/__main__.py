"""``python -m bench [--quick] [--output PATH] [--only GROUP ...]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import redis

from .fixtures import Bench
from .harness import FULL, QUICK, Row, machine, render
from .rows import GROUPS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the table (default: BENCHMARKS.md; nowhere with --quick or --only)",
    )
    parser.add_argument("--only", nargs="+", choices=list(GROUPS), help="run these groups only")
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    # Only a full run of every row replaces BENCHMARKS.md unless told where to write.
    output = args.output or (None if args.quick or args.only else Path("BENCHMARKS.md"))
    mode = "quick" if args.quick else "full"
    client = redis.Redis.from_url(args.redis_url)
    bench = Bench(
        sizes=QUICK if args.quick else FULL, bootstrap=args.bootstrap_servers, redis=client
    )
    about = machine(str(client.info("server")["redis_version"]))
    print(f"benchmarks, {mode} mode, run {bench.run}", *about, sep="\n", flush=True)
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for name in args.only or list(GROUPS):
            print(f"\n== {name}", flush=True)
            rows += GROUPS[name].run(bench)
    finally:
        bench.cleanup()
    rows.sort(key=lambda row: row.number)
    table = render(rows, mode=mode, about=about, elapsed=time.perf_counter() - started)
    print("\n" + table)
    if output is not None:
        output.write_text(table, encoding="utf-8")
        print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
