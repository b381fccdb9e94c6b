"""The real-chain benchmark: ``python -m core.benchmark --real DIR``.

Every chain file in DIR (``*.csv`` / ``*.parquet``, read with the quote importer, quotes the grid
workflow calls "outside" included) is scored for every chain method (core.chain.methods) under
three hold-out protocols:

- random: RANDOM_FRACTION of the quotes hidden, ``draws`` draws (seeded);
- wing: the outer WING_FRACTION by |k| of every expiry hidden (each expiry keeps MIN_VISIBLE);
- expiry: each interior expiry hidden in turn (at most ``max_expiries``, evenly spaced).

The methods in ``sampled`` are scored on a subsample (``sampled_draws`` random draws,
``sampled_max_expiries`` hidden expiries, the first draws and evenly spaced expiries of the full
run): QuantLib's Andreasen-Huge takes seconds per fit on a dense chain, and the CNN and the VAE
(trained on synthetic 13 x 17 grids, warned against for chains) spend long in the chain surface's
SVI fits, their outputs sitting far from any arbitrage-free smile. Scored in full, the two took
131 of the run's 573 fit CPU seconds and were 1.2-540x the lowest error in every cell (2026-12-07);
subsampled, the run took 267 s instead of 304 s on 2 cores. Every cell carries its own n.

Scores per chain x protocol x method: held-out RMSE in vol of the method's quote prediction
(``quote_iv``: the surface, plus svi_gp's fitted put-call offset) and of the bare surface (mean
and standard error over draws or hidden expiries), the share of held-out predictions inside the
quote's bid-ask vol range (where the quote has one), dense-check violations
(core.engine.dense_check, summed over fits) and seconds per fit. Every fit is cold: a warm start
from an earlier draw's surface would carry quotes that this draw hides (held-out information
leaking into the start). JSON out, tables printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.chain.methods import CHAIN_METHODS, get_chain_method
from core.chain.types import ChainQuotes
from core.chain.wing import outer_mask
from core.settings import REPO_ROOT, usable_cores

PROTOCOLS = ("random", "wing", "expiry")
RANDOM_FRACTION = 0.2
WING_FRACTION = 0.25
MIN_VISIBLE = 3           # quotes an expiry keeps under the wing protocol
DEFAULT_JSON = REPO_ROOT / "out" / "real_benchmark.json"
SAMPLED = ("ah", "cnn", "vae")   # scored on a subsample by default (module doc)


# one process per core (the tasks are independent fits), at most 8: a run has 6 x 9 tasks and each
# process holds torch and the weights
DEFAULT_WORKERS = max(1, min(8, usable_cores()))


@dataclass
class RealConfig:
    """What the run does. ``sampled`` methods are scored on a subsample (see the module doc)."""

    draws: int = 10
    max_expiries: int | None = None      # hidden expiries per chain (evenly spaced); None: every interior one
    sampled: tuple = SAMPLED
    sampled_draws: int | None = 3        # the sampled methods: 3 of the draws ...
    sampled_max_expiries: int | None = 4  # ... and 4 of the hidden expiries (evenly spaced), by default
    seed: int = 0
    methods: tuple = CHAIN_METHODS
    workers: int = DEFAULT_WORKERS
    n_strikes: int = 200
    chains: tuple = ()                   # file stems to score; empty = every file in DIR
    protocols: tuple = PROTOCOLS


# --------------------------------------------------------------------------- protocols

def random_masks(chain: ChainQuotes, draws: int, seed: int) -> list:
    n = len(chain)
    n_hide = max(1, int(round(RANDOM_FRACTION * n)))
    out = []
    for d in range(draws):
        hide = np.zeros(n, bool)
        hide[np.random.default_rng(seed + d).choice(n, n_hide, replace=False)] = True
        out.append(hide)
    return out


def wing_mask(chain: ChainQuotes) -> np.ndarray:
    hide = np.zeros(len(chain), bool)
    for i in range(chain.expiries.size):
        idx = np.flatnonzero(chain.slice(i))
        hide[idx[outer_mask(chain.k[idx], WING_FRACTION, MIN_VISIBLE)]] = True
    return hide


def expiry_masks(chain: ChainQuotes, max_expiries: int | None) -> list:
    interior = np.arange(1, chain.expiries.size - 1)
    if max_expiries is not None and interior.size > max_expiries:
        interior = interior[np.unique(np.round(np.linspace(0, interior.size - 1, max_expiries)).astype(int))]
    return [chain.slice(i) for i in interior]


def masks(chain: ChainQuotes, protocol: str, cfg: RealConfig, method: str) -> list:
    sampled = method in cfg.sampled
    if protocol == "random":
        return random_masks(chain, min(cfg.sampled_draws, cfg.draws) if sampled and cfg.sampled_draws else cfg.draws,
                            cfg.seed)
    if protocol == "wing":
        return [wing_mask(chain)]
    return expiry_masks(chain, cfg.sampled_max_expiries if sampled and cfg.sampled_max_expiries else cfg.max_expiries)


# --------------------------------------------------------------------------- scoring

def score_fit(method, chain: ChainQuotes, hide: np.ndarray, n_strikes: int) -> tuple:
    """Fit on the visible quotes, predict the hidden ones: (scores dict, surface)."""
    from core.engine.dense_check import dense_check

    train, test = chain.subset(~hide), chain.subset(hide)
    t0 = time.perf_counter()
    surface = method.fit(train, ask=(test.T, test.k))
    seconds = time.perf_counter() - t0
    # the method's prediction of each hidden quote (the surface, plus a fitted quote offset where
    # the method has one: core.chain.surface.SliceSurface.quote_iv); the bare surface's own error
    # is kept beside it, so a quote model never hides how far the surface itself is
    iv_surface = surface.iv(test.T, test.k)
    pred = iv_surface + surface.quote_offset(test.T, test.k)    # = quote_iv, the surface priced once
    err = pred - test.iv
    surface_err = iv_surface - test.iv
    known = np.isfinite(test.iv_bid) & np.isfinite(test.iv_ask)
    inside = (pred >= test.iv_bid) & (pred <= test.iv_ask)
    report = dense_check(surface, n_strikes)
    # interval coverage of the held-out quotes, for methods with a predictive sd: each level's own
    # interval (the surface's half_width: calibrated per level where the method calibrates it)
    sd = surface.sd(test.T, test.k)
    cover = {} if sd is None else {key: float(np.mean(np.abs(err) <= sd * surface.level_multiple(level)))
                                   for key, level in (("cov80", 0.8), ("cov95", 0.95))}
    return {"rmse": float(np.sqrt(np.mean(err**2))), "surface_rmse": float(np.sqrt(np.mean(surface_err**2))),
            "n_hidden": int(hide.sum()), **cover,
            "inside": float(inside[known].mean()) if known.any() else None, "n_known": int(known.sum()),
            "violations": report.n_violations, "seconds": seconds}, surface


def mean_se(values) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {"mean": None, "se": None, "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    return {"mean": float(v.mean()), "se": se, "n": int(v.size)}


def _pooled(fits: list, key: str):
    """Coverage pooled over every held-out quote of the fits (weighted by n_hidden), or None."""
    pairs = [(f[key], f["n_hidden"]) for f in fits if key in f]
    if not pairs:
        return None
    v, n = np.asarray(pairs, np.float64).T
    return float((v * n).sum() / n.sum())


def _summary(fits: list, errors: list) -> dict:
    return {"rmse": mean_se([f["rmse"] for f in fits]), "surface_rmse": mean_se([f["surface_rmse"] for f in fits]),
            "inside_bid_ask": mean_se([f["inside"] for f in fits]),
            "cov80": _pooled(fits, "cov80"), "cov95": _pooled(fits, "cov95"),
            "dense_violations": int(sum(f["violations"] for f in fits)),
            "fits_with_violations": int(sum(f["violations"] > 0 for f in fits)),
            "seconds_per_fit": float(np.mean([f["seconds"] for f in fits])) if fits else None,
            "n_fits": len(fits), "errors": errors}


def run_method(path: str, method_name: str, cfg: RealConfig) -> dict:
    """Every protocol of one chain file for one method: {protocol: summary}."""
    from core.chain.workflow import read_chain
    from core.settings import apply_thread_policy

    apply_thread_policy()
    chain = read_chain(path)
    method = get_chain_method(method_name)
    out = {}
    for protocol in cfg.protocols:
        fits, errors = [], []
        for hide in masks(chain, protocol, cfg, method_name):
            try:
                scores, _ = score_fit(method, chain, hide, cfg.n_strikes)
            except Exception as exc:          # one failed fit is reported, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            fits.append(scores)
        out[protocol] = _summary(fits, errors)
    return out


def chain_files(directory) -> list:
    d = Path(directory)
    if not d.is_dir():
        raise ValueError(f"--real: {d} is not a folder")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".csv", ".parquet") and p.is_file())
    if not files:
        raise ValueError(f"--real: no .csv or .parquet chain files in {d}")
    return files


def describe(path) -> dict:
    from core.chain.workflow import read_chain

    chain = read_chain(path)
    return {"n_quotes": len(chain), "n_expiries": int(chain.expiries.size),
            "T_range": [float(chain.T.min()), float(chain.T.max())],
            "k_range": [float(chain.k.min()), float(chain.k.max())],
            "has_bid_ask": bool(np.isfinite(chain.iv_bid).any())}


def run(directory, cfg: RealConfig = RealConfig(), progress=None) -> dict:
    """The whole benchmark over DIR's chain files (see the module doc)."""
    t0 = time.time()
    files = chain_files(directory)
    if cfg.chains:
        missing = sorted(set(cfg.chains) - {f.stem for f in files})
        if missing:
            raise ValueError(f"--chains: no chain file named {', '.join(missing)} in {directory}")
        files = [f for f in files if f.stem in cfg.chains]
    result = {"config": {**asdict(cfg), "methods": list(cfg.methods), "random_fraction": RANDOM_FRACTION,
                         "wing_fraction": WING_FRACTION, "directory": str(directory)},
              "chains": {}, "load_errors": {}}
    tasks = []
    for f in files:
        try:
            result["chains"][f.stem] = {**describe(f), "protocols": {p: {} for p in cfg.protocols}}
        except ValueError as exc:
            result["load_errors"][f.name] = str(exc)
            continue
        tasks += [(str(f), m) for m in cfg.methods]
    # slowest first, so the pool's last task is short
    tasks.sort(key=lambda t: (t[1] != "ah", -result["chains"][Path(t[0]).stem]["n_quotes"]))
    def record(done, f, m, summaries):
        for protocol, summary in summaries.items():
            result["chains"][Path(f).stem]["protocols"][protocol][m] = summary
        if progress:
            progress(done, len(tasks), f"{Path(f).stem} {m}")

    if cfg.workers <= 1:                      # in this process: tests, debugging
        for done, (f, m) in enumerate(tasks, 1):
            record(done, f, m, run_method(f, m, cfg))
    else:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            futures = {pool.submit(run_method, f, m, cfg): (f, m) for f, m in tasks}
            for done, fut in enumerate(as_completed(futures), 1):
                record(done, *futures[fut], fut.result())
    result["seconds"] = {"total": round(time.time() - t0, 1)}
    return result


# --------------------------------------------------------------------------- command

def write_json(result: dict, path) -> Path:
    """Write atomically: a temporary name in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.benchmark --real DIR",
                                description="Score every chain method on the real chain files in DIR.")
    p.add_argument("--real", required=True, metavar="DIR", help="folder of chain files (.csv / .parquet)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write results (default {DEFAULT_JSON})")
    p.add_argument("--methods", default=",".join(CHAIN_METHODS), help="comma-separated chain methods")
    p.add_argument("--draws", type=int, default=10, help="random-protocol draws (default 10)")
    p.add_argument("--max-expiries", type=int, default=RealConfig.max_expiries,
                   help="expiry protocol: hide at most this many interior expiries, evenly spaced "
                        "(default: every interior expiry; 0 = all)")
    p.add_argument("--sampled", default=",".join(SAMPLED),
                   help=f"methods scored on a subsample (default {','.join(SAMPLED)}; empty: none)")
    p.add_argument("--sampled-draws", type=int, default=RealConfig.sampled_draws,
                   help=f"random draws for the sampled methods (default {RealConfig.sampled_draws}; 0 = --draws)")
    p.add_argument("--sampled-max-expiries", type=int, default=RealConfig.sampled_max_expiries,
                   help=f"--max-expiries for the sampled methods (default {RealConfig.sampled_max_expiries}; "
                        "0 = as the others)")
    p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                   help=f"processes (default: one per core, at most 8; here {DEFAULT_WORKERS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", default="", help="comma-separated chain file stems to score (default all)")
    p.add_argument("--protocols", default=",".join(PROTOCOLS),
                   help=f"comma-separated protocols among {', '.join(PROTOCOLS)} (default all)")
    return p


def _method_list(parser, text: str, flag: str) -> tuple:
    """Chain methods from a comma-separated list; a parser error naming the unknown ones."""
    names = tuple(m for m in text.split(",") if m)
    unknown = [m for m in names if m not in CHAIN_METHODS]
    if unknown:
        parser.error(f"{flag}unknown method(s) {', '.join(unknown)}; choose from {', '.join(CHAIN_METHODS)}")
    return names


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = _method_list(parser, args.methods, "")
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    protocols = tuple(p for p in args.protocols.split(",") if p)
    if not protocols or set(protocols) - set(PROTOCOLS):
        parser.error(f"--protocols: choose from {', '.join(PROTOCOLS)}")
    chains = tuple(c for c in args.chains.split(",") if c)
    sampled = _method_list(parser, args.sampled, "--sampled: ")
    cfg = RealConfig(draws=args.draws, max_expiries=args.max_expiries or None, sampled=sampled,
                     sampled_draws=args.sampled_draws or None, sampled_max_expiries=args.sampled_max_expiries or None,
                     seed=args.seed, methods=methods, workers=args.workers,
                     chains=chains, protocols=protocols)

    def report(done, total, label):
        sys.stderr.write(f"\r[{done}/{total}] {label} done          ")
        sys.stderr.flush()
        if done == total:
            sys.stderr.write("\n")

    try:
        result = run(args.real, cfg, progress=report)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from core.evaluation.real_tables import format_tables

    print(format_tables(result))
    print(f"wrote {write_json(result, args.json)}")
    return 0
