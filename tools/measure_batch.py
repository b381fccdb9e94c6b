"""Measure batch throughput: chains/s on 1 and 2 Dask workers, and the overhead against a plain loop.

    python tools/measure_batch.py [--chains 200] [--repeats 2] [--method best] [--no-stale] [--json PATH]

Writes ``--chains`` synthetic listed chains (core.synth.chains, full default ChainSpec, the three
families in turn) as CSV files, then per repeat, in this order:

- plain loop: ``core.batch.chain.run_chain`` on every chain in this process (the same function a
  worker runs: read, repair, write, commit), after one warm-up chain;
- batch on 1 and on 2 workers: a LocalCluster of that many processes, started and warmed (weights
  loaded) before the clock starts, then ``repair_dataset`` into a fresh folder, timed to its return.

Prints per setting chains/s (mean +- standard error over repeats) and CPU seconds per chain (this
process and all its children: workers, nannies, the scheduler's thread), the 2-worker / 1-worker
ratio, the per-chain overhead of the 1-worker batch against the plain loop in wall and in CPU
seconds ((t_batch1 - t_loop) / chains), the cluster start-up time, and the load average before and
after. On a shared machine a busy neighbour lowers every wall-clock figure and the ratio; CPU
seconds are less sensitive to it. Cluster start-up is in neither.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAMILIES = ("ssvi", "shifted_ssvi", "sabr_event")


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process and its living descendants."""
    import psutil

    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:      # a process that just ended
            continue
        total += times.user + times.system
    return total


def write_chains(folder: Path, n: int) -> None:
    from core.synth.chains import ChainSpec, make_chain, surface_function

    for i in range(n):
        make_chain(surface_function(FAMILIES[i % 3], seed=1000 + i), ChainSpec(), seed=i).to_csv(
            folder / f"chain_{i:04d}.csv", index=False)


def plain_loop(source: Path, out: Path, options) -> tuple:
    """(wall seconds, CPU seconds) for run_chain over every chain, one after another, in this process."""
    from core.batch.chain import run_chain
    from core.batch.inputs import discover

    chains = discover(source)
    run_chain(chains[0], options, str(out / "warmup"))          # imports and weights, off the clock
    start, cpu = time.perf_counter(), tree_cpu()
    for chain in chains:
        row = run_chain(chain, options, str(out / "loop"))
        assert row["status"] == "ok", row["reason"]
    return time.perf_counter() - start, tree_cpu() - cpu


def batch(source: Path, out: Path, workers: int, method: str, stale: bool) -> tuple:
    """(wall seconds, CPU seconds) of repair_dataset on a warm cluster, and seconds to start and warm it."""
    from core.batch import repair_dataset
    from core.batch.cluster import open_client, register_warm_weights

    start = time.perf_counter()
    with open_client(workers=workers) as client:
        register_warm_weights(client, method, {})
        startup = time.perf_counter() - start
        start, cpu = time.perf_counter(), tree_cpu()
        summary = repair_dataset(source, out, method, client=client, stale=stale, progress=False)
        elapsed, cpu = time.perf_counter() - start, tree_cpu() - cpu
    assert (summary["status"] == "ok").all(), summary.loc[summary["status"] != "ok", "reason"].tolist()
    return (elapsed, cpu), startup


def _mean_se(values) -> tuple:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
    return float(values.mean()), float(se)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--method", default="best")
    parser.add_argument("--no-stale", action="store_true", help="skip the stale scores (as repair --no-stale)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from core.batch.chain import Options
    from core.settings import apply_thread_policy

    apply_thread_policy()
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="measure_batch_"))
    try:
        source = work / "chains"
        source.mkdir()
        write_chains(source, args.chains)
        options = Options(method=args.method, stale=not args.no_stale)
        times = {"loop": [], "1": [], "2": []}
        cpus = {"loop": [], "1": [], "2": []}
        startup = {"1": [], "2": []}
        for r in range(args.repeats):
            wall, cpu = plain_loop(source, work / f"plain{r}", options)
            times["loop"].append(wall)
            cpus["loop"].append(cpu)
            for n in (1, 2):
                (wall, cpu), start = batch(source, work / f"batch{n}_{r}", n, args.method, not args.no_stale)
                times[str(n)].append(wall)
                cpus[str(n)].append(cpu)
                startup[str(n)].append(start)
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.1f} s wall {cpus[k][-1]:.1f} s CPU"
                                                  for k in times) + f", load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = args.chains
    rate = {k: _mean_se([n / t for t in v]) for k, v in times.items()}
    ratio = _mean_se([t1 / t2 for t1, t2 in zip(times["1"], times["2"])])
    overhead = _mean_se([(t1 - tl) / n for t1, tl in zip(times["1"], times["loop"])])
    cpu_per_chain = {k: _mean_se([c / n for c in v]) for k, v in cpus.items()}
    cpu_overhead = _mean_se([(c1 - cl) / n for c1, cl in zip(cpus["1"], cpus["loop"])])
    figures = {"chains": n, "repeats": args.repeats, "method": args.method, "stale": not args.no_stale,
               "seconds": times, "cpu_seconds": cpus, "chains_per_s": rate, "cpu_s_per_chain": cpu_per_chain,
               "ratio_2_over_1": ratio, "overhead_per_chain_s": overhead, "cpu_overhead_per_chain_s": cpu_overhead,
               "cluster_startup_s": startup,
               "load_average_before": load_before, "load_average_after": os.getloadavg(), "cpus": os.cpu_count()}
    print(f"{n} chains, method {args.method}, stale {'on' if not args.no_stale else 'off'}, {args.repeats} repeats "
          f"(mean +- SE):")
    for key, label in (("loop", "plain loop, 1 process"), ("1", "batch, 1 worker"), ("2", "batch, 2 workers")):
        print(f"  {label:24s} {rate[key][0]:6.2f} +- {rate[key][1]:.2f} chains/s, "
              f"{cpu_per_chain[key][0]:.3f} +- {cpu_per_chain[key][1]:.3f} CPU s per chain")
    print(f"  2 workers / 1 worker     {ratio[0]:6.2f} +- {ratio[1]:.2f}")
    print(f"  overhead per chain (1 worker - loop): wall {overhead[0] * 1e3:.0f} +- {overhead[1] * 1e3:.0f} ms, "
          f"CPU {cpu_overhead[0] * 1e3:.0f} +- {cpu_overhead[1] * 1e3:.0f} ms")
    print(f"  cluster start-up (not in the rates): 1 worker {np.mean(startup['1']):.1f} s, "
          f"2 workers {np.mean(startup['2']):.1f} s")
    print(f"  load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{figures['load_average_after'][0]:.2f} {figures['load_average_after'][1]:.2f} "
          f"{figures['load_average_after'][2]:.2f} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
