"""The ``batch`` subcommand of ``python -m core.cli``: its options and what it prints.

Exit codes: 0 every chain repaired (or already done), 3 the batch completed but some chains failed
or (``--chain``) were written but fail the dense arbitrage check (each with its reason in
DIR/summary.parquet), 2 bad options or input, 130 interrupted (rerun the same command to resume),
1 unexpected error.
"""
from __future__ import annotations

import argparse
import sys

EXIT_SOME_FAILED = 3
SHOW_FAILURES = 5

EPILOG = """\
INPUT: a folder (searched recursively) or a quoted glob of quote files, one chain per file; or,
with --partition-keys, a Parquet dataset with one chain per combination of the keys.

Output in DIR: Hive-partitioned Parquet tables quotes/, surface/ (repair's grid), params/ (per-expiry
SVI), summary/ (one row per chain: status, reason, counts, fit RMSE, arbitrage, seconds), and
summary.parquet with every row. A rerun skips chains already complete.

Examples:
  python -m core.cli batch chains/ --out repaired/ --workers 8 --memory-limit 2GiB
  python -m core.cli batch history.parquet/ --partition-keys underlying,quote_date --out repaired/
  python -m core.cli batch 'chains/**/*.csv' --out repaired/ --scheduler tcp://10.0.0.5:8786"""


def add_batch_parser(sub, methods, default_method: str, default_chain_method: str) -> argparse.ArgumentParser:
    """Add ``batch`` to the CLI's subparsers ``sub``."""
    p = sub.add_parser("batch", help="repair every chain of a folder or dataset on Dask, resumably",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description="Repair many chains with the same steps as `repair`, on every core of this "
                                   "machine (a Dask LocalCluster) or on an existing Dask cluster.")
    p.add_argument("input", metavar="INPUT", help="folder or glob of quote files, or a Parquet dataset")
    p.add_argument("--out", required=True, help="output folder (created if missing; reruns resume into it)")
    p.add_argument("--method", default=None, choices=methods,
                   help=f"repair method (default {default_method}; with --chain {default_chain_method})")
    p.add_argument("--chain", action="store_true", help="as in `repair`: each chain on its own domain, with a "
                                                        "chain method; tables as `repair --chain` writes them")
    p.add_argument("--partition-keys", default=None, help="comma-separated keys naming a chain in a Parquet dataset "
                                                          "INPUT, e.g. underlying,quote_date")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the local cluster (default: every core)")
    p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://host:8786); "
                                                     "its workers need this project and DIR on a shared filesystem")
    p.add_argument("--memory-limit", default="auto", help="memory per local worker, e.g. 2GiB (default auto: "
                                                          "the machine's memory split across workers)")
    p.add_argument("--arbitrage", default=None, choices=("calendar", "full", "none"), help="as in `repair`")
    p.add_argument("--valuation-date", default=None, help="as in `repair`")
    p.add_argument("--weights", default=None, help="as in `repair`")
    p.add_argument("--strict", action="store_true", help="as in `repair`: a chain with a dropped row fails")
    p.add_argument("--no-stale", action="store_true", help="as in `repair`: skip the stale-quote scores")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print only the summary path")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    return p


def run_batch(args) -> int:
    """Run the ``batch`` subcommand; returns the exit code (bad input raises ValueError)."""
    from core.batch.layout import SUMMARY_FILE
    from core.batch.run import repair_dataset

    keys = [k.strip() for k in args.partition_keys.split(",") if k.strip()] if args.partition_keys else None
    try:
        summary = repair_dataset(args.input, args.out, args.method, partition_keys=keys, workers=args.workers,
                                 scheduler=args.scheduler, memory_limit=args.memory_limit, arbitrage=args.arbitrage,
                                 stale=not args.no_stale, valuation_date=args.valuation_date, weights=args.weights,
                                 strict=args.strict, chain=args.chain, progress=not args.quiet)
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted; completed chains are kept, rerun the same command to resume\n")
        return 130
    path = f"{args.out.rstrip('/')}/{SUMMARY_FILE}"
    bad = summary[summary["status"] != "ok"]
    if args.quiet:
        print(path)
    else:
        arbitrage = int((summary["status"] == "arbitrage").sum())
        print(f"{len(summary)} chains: {int((summary['status'] == 'ok').sum())} ok, {len(bad) - arbitrage} failed, "
              + (f"{arbitrage} written but failing the dense arbitrage check, " if arbitrage else "")
              + f"{int(summary['resumed'].sum())} already done before this run; summary: {path}")
        for _, row in bad.head(SHOW_FAILURES).iterrows():
            print(f"{'failed' if row['status'] != 'arbitrage' else 'arbitrage'}: {row['source']}: {row['reason']}")
        if len(bad) > SHOW_FAILURES:
            print(f"... and {len(bad) - SHOW_FAILURES} more in {path}")
    return EXIT_SOME_FAILED if len(bad) else 0
