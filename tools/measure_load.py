"""Throughput of a method under parallel load (issue 13 item 12): N processes each repairing batches
for S seconds, against one process doing the same.

    python -m tools.measure_load [--method best] [--procs 8] [--seconds 60] [--batch 256] [--json PATH]

Each worker is a fresh process (spawn) that applies the engine's thread policy the way the CLI and
the batch workers do (core.settings.apply_thread_policy), loads the weights, waits for the others,
then repairs batches of benchmark inputs (SABR-event, adversarial mask) until the time is up. The
figure of merit: aggregate surfaces/s with N processes over (one process's rate x min(N, cores));
the target is >= 0.8. The load average (os.getloadavg) before and after is printed: on a shared
machine other tenants' load counts against the figure.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time


def _worker(method: str, arbitrage: str, batch: int, seconds: float, barrier, results) -> None:
    from core.settings import apply_thread_policy

    apply_thread_policy()
    from core.evaluation.benchmark import TEST_CELLS, test_data
    from core.pipeline import repair

    _, _, iv_obs = test_data(TEST_CELLS[3], batch)
    repair(iv_obs[:8], method, arbitrage=arbitrage)          # warm-up: weights, caches
    barrier.wait()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        repair(iv_obs, method, arbitrage=arbitrage)
        done += batch
    results.put((done, time.perf_counter() - start))


def run(method: str, procs: int, seconds: float, batch: int, arbitrage: str) -> float:
    """Aggregate surfaces/s of ``procs`` processes repairing for ``seconds``."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(method, arbitrage, batch, seconds, barrier, results))
               for _ in range(procs)]
    for w in workers:
        w.start()
    counts = [results.get() for _ in workers]
    for w in workers:
        w.join()
    return sum(done / elapsed for done, elapsed in counts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="best")
    parser.add_argument("--arbitrage", default="calendar", help="projection per repair (default calendar)")
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    one = run(args.method, 1, args.seconds, args.batch, args.arbitrage)
    many = run(args.method, args.procs, args.seconds, args.batch, args.arbitrage)
    load_after = os.getloadavg()
    ideal = one * min(args.procs, cores)
    out = {"method": args.method, "arbitrage": args.arbitrage, "batch": args.batch, "seconds": args.seconds,
           "cores": cores, "procs": args.procs, "one_process_per_s": one, "all_processes_per_s": many,
           "ratio_to_ideal": many / ideal, "target": 0.8,
           "loadavg_before": load_before, "loadavg_after": load_after,
           "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS")}
    print(f"{args.method} ({args.arbitrage}), batch {args.batch}, {args.seconds:g} s, {cores} cores: "
          f"1 process {one:,.0f} surfaces/s; {args.procs} processes {many:,.0f} surfaces/s in total = "
          f"{out['ratio_to_ideal']:.2f} x (1-process rate x min({args.procs}, {cores})) (target >= 0.80); "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
