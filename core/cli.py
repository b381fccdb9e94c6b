"""The command line, one entry point with subcommands:

    python -m core.cli repair QUOTES --method svi --out DIR     repair a quote file
    python -m core.cli batch INPUT --out DIR [--workers N]      repair many chains on Dask (core.batch.cli)
    python -m core.cli benchmark [--n-test N] [--json PATH]     the 2 x 2 benchmark (core.evaluation.benchmark)
    python -m core.cli train {cnn,vae,best} [options]           train a learned method's weights
    python -m core.cli stale --calibrate | --auc                the stale-quote flag's calibration and AUC

Exit codes: 0 done, 2 bad input (file, columns, values, options, weights), 1 unexpected error.
Every failure prints one line to stderr naming the problem.
"""
from __future__ import annotations

import argparse
import sys

from core.quotes.read import COLUMNS_HELP, MAX_FILE_BYTES, MAX_ROWS

EPILOG = COLUMNS_HELP + """

Outputs in --out: grid.csv/.parquet (T, k, iv, sd, method, ...), quotes.csv/.parquet (every
input row: status, reason, quote, repaired, residual, stale_score, stale_flag), svi_params
(per-slice a, b, rho, m, sigma), report.json.

Example: python -m core.cli repair samples/quotes_prices.csv --method best --out out/"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad-input path
        sys.stderr.write(f"error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core.cli", description="Repair your own option quotes on the model grid.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    rep = sub.add_parser("repair", help="read a quote file, repair it, write the tables",
                         formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                         description="Read QUOTES (CSV or Parquet, one quote per row, or a vendor layout: yfinance or the Yahoo web table, "
                                     "Cboe, OptionMetrics IvyDB), place them on the "
                                     "13 x 17 grid, repair with --method, write tables to --out.")
    rep.add_argument("quotes", metavar="QUOTES", help=f"quote file, .csv or .parquet (at most "
                     f"{MAX_FILE_BYTES // 2**20} MiB, {MAX_ROWS:,} rows)")
    from core.chain.methods import CHAIN_METHODS, DEFAULT_CHAIN_METHOD
    from core.repairers.registry import DEFAULT_METHOD

    rep.add_argument("--method", default=None, choices=CHAIN_METHODS,
                     help=f"repair method (default {DEFAULT_METHOD}, the closest to the truth on the sample chains; "
                          f"with --chain {DEFAULT_CHAIN_METHOD}, the best on the real chains)")
    rep.add_argument("--arbitrage", default=None, choices=("calendar", "full", "none"),
                     help="no-arbitrage projection of the repaired grid (default: the method's own, calendar "
                          "for most; full adds the butterfly projection)")
    rep.add_argument("--out", required=True, help="output directory (created if missing)")
    rep.add_argument("--chain", action="store_true",
                     help="repair on the chain's own domain (every expiry and strike, no grid box) into an "
                          "arbitrage-free surface; adds the chain-only methods (svi_gp, svi_fit, ah); writes the quotes (with "
                          "extrapolated and query rows), grid (dense surface) and params tables in --format, "
                          "and dense_check.json")
    rep.add_argument("--format", default="both", choices=("csv", "parquet", "both"), help="table format (default both)")
    rep.add_argument("--valuation-date", default=None, help="YYYY-MM-DD, for files with expiry but no valuation_date")
    rep.add_argument("--spot", type=float, default=None, help="underlying price, for forwards where put-call parity "
                                                              "cannot give them (with --rate)")
    rep.add_argument("--rate", type=float, default=None, help="continuously compounded rate per year (0.04 = 4 %%), "
                                                              "for forwards and discounts where parity cannot give them")
    rep.add_argument("--dividend-yield", type=float, default=None, help="continuous dividend yield per year (with "
                                                                        "--spot and --rate)")
    rep.add_argument("--weights", default=None, help="weights file of a learned method (cnn, best; default: the "
                                                      "shipped weights/<method>.pt)")
    rep.add_argument("--strict", action="store_true", help="fail if any row is dropped (default: drop and report)")
    rep.add_argument("--no-stale", action="store_true", help="skip the stale-quote scores (faster)")
    rep.add_argument("--quiet", action="store_true", help="print only the output directory")
    rep.add_argument("--debug", action="store_true", help="show the traceback of any error, bad input included")
    from core.batch.cli import add_batch_parser

    add_batch_parser(sub, CHAIN_METHODS, DEFAULT_METHOD, DEFAULT_CHAIN_METHOD)
    sub.add_parser("benchmark", help="the 2 x 2 synthetic benchmark (options: benchmark --help)")
    sub.add_parser("train", help="train a learned method: train cnn | train vae | train best (options: train cnn --help)")
    sub.add_parser("stale", help="calibrate the stale-quote flag or measure its AUC (options: stale --help)")
    return parser


def _read(args):
    """The quote file with the command's reading options; ``--strict`` refuses dropped rows."""
    from core.quotes.read import read_quotes, refuse_dropped_rows

    quotes = read_quotes(args.quotes, valuation_date=args.valuation_date, spot=args.spot, rate=args.rate,
                         dividend_yield=args.dividend_yield)
    if args.strict:
        refuse_dropped_rows(quotes)
    return quotes


def _report(lines, written, args) -> int:
    from core.quotes.export import earlier_outputs

    for old in earlier_outputs(written):
        sys.stderr.write(f"warning: {old} is from an earlier run (this one wrote --format {args.format})\n")
    if args.quiet:
        print(args.out)
        return 0
    for line in lines:
        print(line)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _repair_chain(args) -> int:
    from core.chain.workflow import repair_chain, write_chain_outputs

    for flag, value in (("--arbitrage", args.arbitrage), ("--weights", args.weights)):
        if value:   # the chain surface is arbitrage-free by construction; grid methods use the shipped weights
            raise ValueError(f"{flag} does not apply with --chain")
    result = repair_chain(_read(args), method=args.method, stale=not args.no_stale)
    code = _report(result.summary_lines(), write_chain_outputs(result, args.out, args.format), args)
    if not result.dense.ok:
        # the surface is arbitrage-free by construction; should the dense check still find a
        # violation, the outputs are written for inspection but the run does not pass as clean
        sys.stderr.write(f"error: {result.dense.failure()}; see dense_check.json in {args.out}\n")
        return 3
    return code


def _repair(args) -> int:
    from core.quotes.export import check_out_dir, write_outputs
    from core.quotes.workflow import repair_quotes
    from core.chain.methods import DEFAULT_CHAIN_METHOD
    from core.repairers.registry import DEFAULT_METHOD, METHODS, repairer_class

    check_out_dir(args.out, create=False)   # refuse a bad --out before the work, not after
    if args.chain:
        args.method = args.method or DEFAULT_CHAIN_METHOD
        return _repair_chain(args)
    args.method = args.method or DEFAULT_METHOD
    if args.method not in METHODS:
        raise ValueError(f"method {args.method} works on the chain's own domain: add --chain")
    if args.weights and not repairer_class(args.method).needs_weights:
        raise ValueError(f"--weights applies to methods with weights files, not {args.method}")
    config = {"weights": args.weights} if args.weights else {}
    result = repair_quotes(_read(args), method=args.method, stale=not args.no_stale, arbitrage=args.arbitrage, **config)
    return _report(result.summary_lines(), write_outputs(result, args.out, args.format), args)


# Subcommands whose options belong to another module's own parser: the rest of the line is handed on.
DELEGATED = {"benchmark": "core.benchmark", "stale": "core.evaluation.stale_study",
             "train cnn": "core.training.cnn", "train vae": "core.training.vae", "train best": "core.training.best"}


def _delegate(argv: list) -> int | None:
    """Run a delegated subcommand (None when argv names none)."""
    import importlib

    for words in sorted(DELEGATED, key=len, reverse=True):
        n = len(words.split())
        if argv[:n] == words.split():
            from core.settings import apply_thread_policy

            apply_thread_policy()
            return importlib.import_module(DELEGATED[words]).main(argv[n:])
    if argv[:1] == ["train"]:
        sys.stderr.write("error: train what? choose one of cnn, vae, best (see --help)\n")
        return 2
    return None


def _terminate_as_interrupt():
    """SIGTERM (a job scheduler's stop, ``timeout``) unwinds like Ctrl-C, so the writers' clean-up
    runs: killed outright, a stop during the writes left 8 MB temporary files in the output folder.
    Returns the handler it replaced (None off the main thread)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, interrupt)
    return None


def _restore_terminate(previous) -> None:
    """Put back the SIGTERM handler ``main`` found (an in-process caller keeps its own)."""
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    delegated = _delegate(argv)
    if delegated is not None:
        return delegated
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from core.repairers.weights import WeightsError
    from core.settings import apply_thread_policy

    apply_thread_policy()
    previous = _terminate_as_interrupt()
    try:
        if args.command == "batch":
            from core.batch.cli import run_batch

            return run_batch(args)
        return _repair(args)
    except (ValueError, WeightsError) as exc:
        if getattr(args, "debug", False):     # a one-line message hides where it came from
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"error: {message}\n")
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        return 0
    except OSError as exc:  # the file system refused (name too long, permissions, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # an unexpected failure still ends in one line
        if getattr(args, "debug", False):
            raise
        message = " ".join(str(exc).split())
        sys.stderr.write(f"error: unexpected {type(exc).__name__}: {message} (rerun with --debug for the traceback)\n")
        return 1
    finally:
        _restore_terminate(previous)


if __name__ == "__main__":
    sys.exit(main())
