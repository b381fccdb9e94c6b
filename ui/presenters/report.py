"""Reading what the engine wrote: benchmark results, the weights manifest, and their tables.

Torch-free on purpose (only json, numpy): the dashboard's landing page renders from this module
before torch has loaded, which keeps cold start short. ``best_in_row`` comes from the JSON's own
"best" list when present (core.evaluation.benchmark wrote it), else from core.evaluation.benchmark, imported on demand.

Paths can be overridden by environment variable: $REPAIR_CNN_WEIGHTS and $REPAIR_BEST_WEIGHTS for
the weights of "cnn" and "best" (each manifest is the .json beside its weights) and
$REPAIR_BENCHMARK_JSON for the results the app shows.

Sentences that judge a method ("best wins by more than one SE", "coverage is not nominal") are built
here from the numbers, so the pages only print them. Functions that write method names take
``label`` (name -> display name; the pages pass ui.style.method_label).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from statistics import NormalDist

import numpy as np

from core.seeds import FAMILY_LABELS
from ui import numbers

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = ROOT / "weights" / "cnn.pt"          # = core.repairers.cnn.WEIGHTS_DIR / "cnn.pt"
DEFAULT_JSON = ROOT / "results" / "benchmark.json"     # = core.evaluation.benchmark.DEFAULT_JSON
DEFAULT_BEST_WEIGHTS = ROOT / "weights" / "best.pt"
WEIGHTS_ENV = "REPAIR_CNN_WEIGHTS"          # path of the CNN weights the app uses
BEST_WEIGHTS_ENV = "REPAIR_BEST_WEIGHTS"    # path of the weights of method "best" the app uses
RESULTS_ENV = "REPAIR_BENCHMARK_JSON"       # path of the benchmark results the app shows
# Held-out families of the leave-one-family-out section ("ssvi": both SSVI families).
HELD_OUT_LABELS = {"ssvi": "SSVI", "sabr_event": "SABR-event", "heston": "Heston"}
BEST = "best"                  # the team's estimator, whose wins the pages spell out
LOFO_BASELINES = ("interp", "svi", "interp_svi")
NOMINAL_TOL = 0.03             # coverage within 3 points of its level counts as nominal (issue 5)
LEVELS = (0.80, 0.95)          # the benchmark's coverage levels (cov80, cov95)


def best_in_row(scores: dict) -> list:
    """core.evaluation.benchmark.best_in_row (the tie rule lives there), imported on first use."""
    from core.evaluation.benchmark import best_in_row as rule

    return rule(scores)


def cnn_weights_path() -> Path:
    """The CNN weights file the app uses: $REPAIR_CNN_WEIGHTS, else weights/cnn.pt."""
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)


def best_weights_path() -> Path:
    """The weights of method "best" the app uses: $REPAIR_BEST_WEIGHTS, else weights/best.pt."""
    return Path(os.environ.get(BEST_WEIGHTS_ENV) or DEFAULT_BEST_WEIGHTS)


def weights_path(method: str) -> Path | None:
    """The weights file the app uses for ``method`` (None for a method without weights)."""
    return {"cnn": cnn_weights_path, BEST: best_weights_path}.get(method, lambda: None)()


def benchmark_json_path() -> Path:
    """The benchmark results the app shows: $REPAIR_BENCHMARK_JSON, else results/benchmark.json."""
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_JSON)


def read_manifest(weights: Path | None = None) -> dict:
    """The JSON manifest beside the weights file (``<stem>.json``); ValueError with the reason."""
    path = (Path(weights) if weights else cnn_weights_path()).with_suffix(".json")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"weights manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"weights manifest {path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"weights manifest {path} is not a JSON object")
    return manifest


def manifest_summary(manifest: dict) -> dict:
    """The manifest's headline facts for display (absent keys are left out)."""
    train = manifest.get("train_config", {})
    facts = {
        "description": manifest.get("description"),
        "training data": (f"{train['n_train']} {train.get('family')} surfaces, {train.get('regime')} masks, "
                          f"{train.get('noise_bp')} bp noise" if "n_train" in train else None),
        "epochs": train.get("epochs"),
        "seed": train.get("seed"),
        "best validation RMSE (vol)": manifest.get("best_val_rmse_iv"),
        "best epoch": manifest.get("best_epoch"),
        "training time (s)": manifest.get("train_seconds"),
        "trained on": manifest.get("date"),
        "commit": manifest.get("git_commit"),
        "torch": manifest.get("torch_version"),
    }
    return {k: v for k, v in facts.items() if v is not None}


def load_benchmark(path: Path | None = None) -> dict:
    """Benchmark results JSON; ValueError with a one-line reason when missing, unreadable or malformed."""
    path = Path(path) if path else benchmark_json_path()
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"benchmark results not found: {path} (run `python -m core.benchmark`)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"benchmark results {path} are unreadable: {exc}") from None
    cells = result.get("cells") if isinstance(result, dict) else None
    if not cells or not isinstance(cells, list):
        raise ValueError(f"benchmark results {path} hold no cells")
    for c in cells:
        missing = [key for key in ("family", "mask", "rmse") if key not in c]
        if missing:
            raise ValueError(f"benchmark results {path}: a cell lacks {', '.join(missing)}")
    return result


def cell_label(cell: dict) -> str:
    return f"{FAMILY_LABELS.get(cell['family'], cell['family'])} / {cell['mask']}"


def result_methods(result: dict) -> list:
    """Methods scored in a benchmark result: the run's own order (config.methods), then any others."""
    seen = list(result.get("config", {}).get("methods") or [])
    for c in result["cells"]:
        seen += [m for m in c["rmse"] if m not in seen]
    return [m for m in seen if any(m in c["rmse"] for c in result["cells"])]


def _fmt_score(score: dict) -> str:
    """"mean ± SE" in vol points (ui.numbers)."""
    return fmt_score(score.get("mean", float("nan")), score.get("se", float("nan")))


def fmt_score(mean: float, se: float) -> str:
    """"mean ± SE" in vol points, the tables' decimals (ui.numbers)."""
    return numbers.vol_se(mean, se)


def score_table(result: dict, key: str = "rmse") -> tuple:
    """(text rows, bold flags) for the ``key`` table ("rmse" or "downstream_svi").

    Returns two lists of dicts, one per cell, keyed "cell", "obs %" and each method: the text
    "mean ± SE" and whether that entry is the row's best or tied with it (within one SE); the
    flags' "cell" repeats the label so the two tables align.
    """
    methods = result_methods(result)
    rows, bold = [], []
    for c in result["cells"]:
        scores = c.get(key, {})
        best = best_in_row({m: s for m, s in scores.items() if m in methods})
        row = {"cell": cell_label(c), "obs %": numbers.number(100 * c.get("observed_fraction", float("nan")))}
        row.update({m: _fmt_score(scores[m]) if m in scores else "—" for m in methods})
        rows.append(row)
        bold.append({"cell": row["cell"], "obs %": False} | {m: m in best for m in methods})
    return rows, bold


UNCERTAINTY_COLUMNS = {   # key in diagnostics_by_method -> column title
    "cov80": "cov80", "cov95": "cov95", "width80": f"width80 ({numbers.VOL_UNIT})",
    "width95": f"width95 ({numbers.VOL_UNIT})", "avg_sd": f"mean sd ({numbers.VOL_UNIT})", "err_sd_corr": "err–sd corr",
    "stale_auc": "stale AUC",
}
# How ui.numbers writes each column of diagnostics_table.
UNCERTAINTY_KINDS = {title: numbers.VOL if numbers.VOL_UNIT in title else numbers.RATIO
                     for title in UNCERTAINTY_COLUMNS.values()}


def sd_methods(result_or_cells) -> list:
    """Methods with a predictive sd (coverage in diagnostics_by_method), in the results' order."""
    cells = _cells(result_or_cells)
    seen = []
    for c in cells:
        seen += [m for m, d in (c.get("diagnostics_by_method") or {}).items()
                 if "cov80" in d and m not in seen]
    return seen


def diagnostics_table(result: dict) -> list:
    """One row per (cell, method with an sd): coverage at 80 / 95 %, mean interval widths, mean sd,
    err–sd correlation and stale AUC (fractions and vol units; NaN where absent). Intervals are each
    method's own (conformal for a calibrated method), around its default-projected repair."""
    rows = []
    for c in result["cells"]:
        by_method = c.get("diagnostics_by_method") or ({"cnn": c["diagnostics"]} if "diagnostics" in c else {})
        for m in [m for m in sd_methods(result) if m in by_method]:
            d = by_method[m]
            row = {"cell": cell_label(c), "method": m}
            row.update({title: _num(d.get(key)) for key, title in UNCERTAINTY_COLUMNS.items()})
            rows.append(row)
    return rows


def _num(value) -> float:
    return float(value) if value is not None else float("nan")


def _cells(result_or_cells) -> list:
    return result_or_cells["cells"] if isinstance(result_or_cells, dict) else list(result_or_cells)


def metric_table(result: dict, key: str, higher_is_better: bool = True) -> tuple:
    """(rows, bold) for a per-method diagnostic without SE (e.g. "stale_auc"): cells x methods,
    values as floats (NaN where absent), the row's best in bold."""
    methods = result_methods(result)
    rows, bold = [], []
    for c in result["cells"]:
        d = c.get("diagnostics_by_method") or {}
        values = {m: _num(d.get(m, {}).get(key)) for m in methods}
        finite = [v for v in values.values() if np.isfinite(v)]
        top = (max(finite) if higher_is_better else min(finite)) if finite else None
        rows.append({"cell": cell_label(c)} | values)
        bold.append({"cell": False} | {m: top is not None and values[m] == top for m in methods})
    return rows, bold


def cell_details(result: dict, index: int) -> dict:
    """The per-cell ``details`` of a benchmark result (empty dict when the run had none)."""
    return result["cells"][index].get("details") or {}


def headline(result: dict) -> list:
    """The 2 x 2 at a glance: per cell, its methods ordered by mean RMSE, best and ties flagged.

    Returns [{"family", "mask", "label", "observed_fraction", "entries": [{"method", "text", "best"}]}].
    """
    out = []
    for c in result["cells"]:
        scores = c["rmse"]
        best = c["best"] if isinstance(c.get("best"), list) else best_in_row(scores)
        order = sorted(scores, key=lambda m: (not np.isfinite(scores[m]["mean"]), scores[m]["mean"]))
        out.append({"family": c["family"], "mask": c["mask"], "label": cell_label(c),
                    "observed_fraction": c.get("observed_fraction"),
                    "entries": [{"method": m, "text": _fmt_score(scores[m]), "best": m in best} for m in order]})
    return out


def score_series(result: dict, key: str = "rmse") -> dict:
    """{method: {"cells": labels, "mean": [...], "se": [...]}} for a bar chart of ``key`` scores."""
    out = {}
    for m in result_methods(result):
        cells = [c for c in result["cells"] if m in c.get(key, {})]
        out[m] = {"cells": [cell_label(c) for c in cells], "mean": [c[key][m]["mean"] for c in cells],
                  "se": [c[key][m]["se"] for c in cells]}
    return out


def err_sd_points(details: dict, multipliers: dict | None = None) -> dict:
    """{method: {"sd", "abs_err", "sd_min", "sd_max", "q", "above80", "above95"}} from a cell's ``err_sd_sample``
    (sd_min: the smallest positive sd).

    ``multipliers``: {method: {0.8: q80, 0.95: q95}}, each method's own interval half-width per unit
    sd (conformal for a calibrated method); Gaussian z (1.2816, 1.96) for a method not given.
    above80 / above95: share of the sampled missing cells whose |error| exceeds q80 / q95 sd, i.e.
    falls outside that method's 80 % / 95 % interval.
    """
    out = {}
    for m, sample in (details.get("err_sd_sample") or {}).items():
        sd, err = np.asarray(sample["sd"], float), np.asarray(sample["abs_err"], float)
        if sd.size == 0:
            continue
        q = {level: NormalDist().inv_cdf(0.5 + level / 2) for level in LEVELS} | dict((multipliers or {}).get(m, {}))
        positive = sd[sd > 0]
        out[m] = {"sd": sd, "abs_err": err, "sd_max": float(sd.max()), "q": q,
                  "sd_min": float(positive.min()) if positive.size else float(sd.max()),
                  "above80": float(np.mean(err > q[0.8] * sd)), "above95": float(np.mean(err > q[0.95] * sd))}
    return out


# --------------------------------------------------------------------------- does "best" win?

def _identity(name: str) -> str:
    return name


def _finite(scores: dict) -> dict:
    return {m: s for m, s in scores.items() if np.isfinite(s.get("mean", float("nan")))}


def method_verdict(scores: dict, method: str = BEST, label=_identity, rivals=None) -> dict:
    """Does ``method`` win this row of {method: {"mean", "se"}} by more than one SE?

    "wins": its mean is below every rival's by more than the larger of the two SEs (the benchmark's
    tie rule); "tied": no rival is below it by more than that, but some rival is within it;
    "loses": a rival is lower by more than one SE; "absent": ``method`` was not scored. ``rivals``
    limits the comparison (default: every other method in the row). Returns {"status", "text",
    "runner_up" (the best rival), "gap" (rival mean - method mean, vol), "gap_se" (gap in SEs)}.
    """
    scores = _finite(scores)
    name = label(method)
    others = {m: s for m, s in scores.items() if m != method and (rivals is None or m in rivals)}
    if method not in scores:
        return {"status": "absent", "text": f"{name} was not scored here.", "runner_up": None,
                "gap": float("nan"), "gap_se": float("nan")}
    own = scores[method]
    if not others:
        return {"status": "wins", "text": f"{name} is the only method scored here.", "runner_up": None,
                "gap": float("nan"), "gap_se": float("nan")}
    runner = min(others, key=lambda m: others[m]["mean"])
    rival = others[runner]
    se = max(np.nan_to_num(own.get("se", 0.0)), np.nan_to_num(rival.get("se", 0.0)))
    gap = rival["mean"] - own["mean"]
    gap_se = gap / se if se > 0 else float("inf") * np.sign(gap)
    mine, theirs = _fmt_score(own), _fmt_score(rival)
    beaten = [m for m, s in others.items()
              if own["mean"] - s["mean"] > max(np.nan_to_num(own.get("se", 0.0)), np.nan_to_num(s.get("se", 0.0)))]
    if gap > se:
        status = "wins"
        text = (f"{name} wins by more than one SE: {mine} against {theirs} for {label(runner)}, the runner-up "
                f"({numbers.vol(gap)} {numbers.VOL_UNIT} lower, {_se_count(gap_se)}; "
                f"{rival['mean'] / own['mean']:.1f}× lower).")
    elif not beaten:
        status = "tied"
        text = (f"{name} does not win by more than one SE: {mine} against {theirs} for {label(runner)}, "
                f"a tie within one SE ({'lower' if gap >= 0 else 'higher'} by {numbers.vol(abs(gap))} "
                f"{numbers.VOL_UNIT}, "
                f"{_se_count(abs(gap_se))}).")
    else:
        status = "loses"
        text = (f"{name} does not win: {label(runner)} is lower by more than one SE ({theirs} against "
                f"{name}'s {mine}, {numbers.vol(abs(gap))} {numbers.VOL_UNIT} lower, {_se_count(abs(gap_se))}).")
    return {"status": status, "text": text, "runner_up": runner, "gap": float(gap), "gap_se": float(gap_se)}


def _se_count(n: float) -> str:
    if not np.isfinite(n):
        return "SE 0"
    return f"{n:.1f} SE" if n < 10 else f"{n:.0f} SE"


def best_verdicts(result_or_cells, key: str = "rmse", method: str = BEST, label=_identity, rivals=None) -> list:
    """``method_verdict`` for every cell's ``key`` scores; each with the cell's "label"."""
    return [{"label": cell_label(c)} | method_verdict(c.get(key, {}), method, label, rivals)
            for c in _cells(result_or_cells)]


def verdict_summary(verdicts: list, method: str = BEST, label=_identity, what: str = "cell") -> str:
    """One plain sentence over ``best_verdicts``: wins everywhere, or where it does not."""
    name = label(method)
    n = len(verdicts)
    absent = [v for v in verdicts if v["status"] == "absent"]
    if len(absent) == n:
        return f"{name} is not in these results."
    not_won = [v for v in verdicts if v["status"] in ("tied", "loses")]
    if not not_won:
        scored = n - len(absent)
        every = f"every {what} ({scored} of {n})" if not absent else f"{scored} of {n} {what}s (not scored in the rest)"
        return f"{name} wins {every} by more than one SE."
    parts = [f"{v['label']} ({'tied within one SE with' if v['status'] == 'tied' else 'beaten by'} "
             f"{label(v['runner_up'])})" for v in not_won]
    return (f"{name} does not win by more than one SE in {len(not_won)} of {n} {what}s: "
            + "; ".join(parts) + ".")


# --------------------------------------------------------------------------- projections

def projection_rows(result: dict) -> list:
    """One row per (cell, method): RMSE after the calendar and after the full projection, their
    difference, g(k) < 0 rate raw -> after calendar -> after full, calendar rate raw and after full.
    Rates are fractions; RMSE in vol units ("mean" of the benchmark's mean ± SE)."""
    rows = []
    for c in result["cells"]:
        full_default = set(c.get("full_default") or [])
        for m in result_methods(result):
            d = (c.get("diagnostics_by_method") or {}).get(m, {})
            cal, full = (c.get("rmse_calendar") or {}).get(m), (c.get("rmse_full") or {}).get(m)
            rows.append({
                "cell": cell_label(c), "method": m, "default": "full" if m in full_default else "calendar",
                "rmse_calendar": _num(cal and cal["mean"]), "rmse_calendar_se": _num(cal and cal["se"]),
                "rmse_full": _num(full and full["mean"]), "rmse_full_se": _num(full and full["se"]),
                "full_minus_calendar": _num(full and cal and full["mean"] - cal["mean"]),
                "g_raw": _num(d.get("g_negative_raw")), "g_calendar": _num(d.get("g_negative")),
                "g_full": _num(d.get("g_negative_full")), "calendar_raw": _num(d.get("raw_calendar")),
                "calendar_after_calendar": _num(d.get("post_calendar")),
                "calendar_after_full": _num(d.get("calendar_full")),
            })
    return rows


def projection_notes(result: dict, label=_identity) -> list:
    """Plain sentences: what the full projection does to each method's RMSE, and what arbitrage is left."""
    rows = [r for r in projection_rows(result) if np.isfinite(r["full_minus_calendar"])]
    if not rows:
        return ["These results carry no calendar-vs-full comparison (run `python -m core.benchmark`)."]
    notes = []
    for m in dict.fromkeys(r["method"] for r in rows):
        diffs = np.array([r["full_minus_calendar"] for r in rows if r["method"] == m])
        lo, hi = float(np.min(np.abs(diffs))), float(np.max(np.abs(diffs)))
        span = (numbers.vol(lo) if numbers.vol(lo) == numbers.vol(hi) else f"{numbers.vol(lo)}–{numbers.vol(hi)}")
        span += f" {numbers.VOL_UNIT}"
        if (diffs < 0).all():
            notes.append(f"{label(m)}: the full projection lowers the RMSE in every cell (by {span}).")
        elif (diffs > 0).all():
            notes.append(f"{label(m)}: the full projection raises the RMSE in every cell (by {span}): "
                         "removing butterfly arbitrage costs accuracy here.")
        else:
            notes.append(f"{label(m)}: the full projection changes the RMSE by {numbers.vol(diffs.min(), sign=True)} to "
                         f"{numbers.vol(diffs.max(), sign=True)} {numbers.VOL_UNIT} across cells (at most "
                         f"{numbers.vol(hi)} either way).")
    left = [r for r in rows if r["g_full"] > 0 or r["calendar_after_full"] > 0]
    if left:
        notes.append("Arbitrage left after the full projection: " + "; ".join(
            f"{label(r['method'])} on {r['cell']} (g(k) < 0 {pct(r['g_full'], 2)}, "
            f"calendar {pct(r['calendar_after_full'], 2)})"
            for r in left) + ".")
    else:
        worst = max(rows, key=lambda r: r["g_calendar"])
        notes.append(f"After the full projection no method has a g(k) < 0 node or a calendar violation in any cell; "
                     f"after the calendar projection alone, g(k) < 0 reaches {pct(worst['g_calendar'])} of interior "
                     f"nodes ({label(worst['method'])}, {worst['cell']}).")
    return notes


# --------------------------------------------------------------------------- coverage

def coverage_notes(result_or_cells, label=_identity, methods=None, tol: float = NOMINAL_TOL) -> list:
    """Per method with an sd: is coverage within ``tol`` of 80 % and 95 % in every cell? Plain sentences."""
    cells = _cells(result_or_cells)
    notes = []
    for m in methods or sd_methods(cells):
        records = [(cell_label(c), c["diagnostics_by_method"][m]) for c in cells
                   if "cov80" in (c.get("diagnostics_by_method") or {}).get(m, {})]
        if not records:
            continue
        ranges = "; ".join(f"{pct(level, 0)}: " + _span_pct([d[f'cov{round(100 * level)}'] for _, d in records])
                           for level in LEVELS)
        off = [(cell, level, d[f"cov{round(100 * level)}"]) for cell, d in records for level in LEVELS
               if abs(d[f"cov{round(100 * level)}"] - level) > tol]
        where = "every cell" if len(records) > 1 else "this cell"
        if not off:
            notes.append(f"{label(m)}: coverage within {tol * 100:.0f} points of nominal in {where} ({ranges}).")
            continue
        under = all(value < level for _, level, value in off)
        cells_off = list(dict.fromkeys(cell for cell, _, _ in off))
        count = f"in {len(cells_off)} of {len(records)} cells" if len(records) > 1 else "in this cell"
        notes.append(f"{label(m)}: coverage is not nominal {count} ({ranges})"
                     + (" — below the level: the intervals are too narrow." if under else ".")
                     + ("" if len(cells_off) == len(records) else f" Off in: {', '.join(cells_off)}."))
    return notes


def pct(value: float, digits: int = 1) -> str:
    """0.954 -> '95.4 %' (the workbench writes a space before %)."""
    return f"{100 * value:.{digits}f} %"


def _span_pct(values) -> str:
    lo, hi = min(values), max(values)
    return pct(lo) if round(lo, 3) == round(hi, 3) else f"{100 * lo:.1f}–{pct(hi)}"


# --------------------------------------------------------------------------- leave one family out

def lofo_blocks(result: dict) -> list:
    """The leave-one-family-out section of a result ([] when the run had none)."""
    blocks = result.get("lofo")
    return blocks if isinstance(blocks, list) else []


def lofo_table(result: dict) -> tuple:
    """(rows, bold) for the leave-one-family-out table: one row per held-out cell.

    Columns: "held out", "cell", the baselines, "best" (trained on every family), "best_lofo"
    (trained without the held-out family) as "mean ± SE" text, and "cov80" / "cov95" of best_lofo
    (floats). bold: best in the row and ties within one SE among the baselines and "best_lofo" ("best"
    saw the held-out family: a reference, never bold). A block
    that could not run gives one row with its "error".
    """
    rows, bold = [], []
    for block in lofo_blocks(result):
        held = HELD_OUT_LABELS.get(block.get("held_out"), block.get("held_out"))
        if "error" in block:
            rows.append({"held out": held, "cell": "—", "error": block["error"]})
            bold.append({})
            continue
        for c in block.get("cells", []):
            methods = [m for m in LOFO_BASELINES + (BEST, "best_lofo") if m in c.get("rmse", {})]
            # Bold only among the models that never saw the held-out family: "best" trained on every
            # family is shown for reference, and bolding it would crown the model that saw the answers.
            best = best_in_row({m: v for m, v in c["rmse"].items() if m != BEST})
            d = (c.get("diagnostics_by_method") or {}).get("best_lofo", {})
            rows.append({"held out": held, "cell": cell_label(c)}
                        | {m: _fmt_score(c["rmse"][m]) for m in methods}
                        | {"cov80": _num(d.get("cov80")), "cov95": _num(d.get("cov95"))})
            bold.append({m: m in best for m in methods})
    return rows, bold


def lofo_notes(result: dict, label=_identity, tol: float = NOMINAL_TOL) -> list:
    """Plain sentences on the held-out families: does "best" trained without the family still beat
    the baselines by more than one SE, what holding it out costs, and whether its coverage is nominal."""
    notes = []
    for block in lofo_blocks(result):
        held = HELD_OUT_LABELS.get(block.get("held_out"), block.get("held_out"))
        if "error" in block:
            notes.append(f"{held} held out: not run — {block['error']}.")
            continue
        cells = block.get("cells", [])
        if not cells:
            continue
        lofo_label = lambda m: f"{label(BEST)} without {held}" if m == "best_lofo" else label(m)
        verdicts = best_verdicts(cells, "rmse", "best_lofo", lofo_label, rivals=LOFO_BASELINES)
        won = [v for v in verdicts if v["status"] == "wins"]
        count = "both" if len(cells) == 2 else f"all {len(cells)}"
        if len(won) == len(verdicts):
            text = (f"Trained without {held}, {label(BEST)} still beats every classical baseline by more than one "
                    f"SE on {count} {held} cells")
        else:
            text = (f"Trained without {held}, {label(BEST)} does not beat every classical baseline by more than one "
                    f"SE: " + "; ".join(f"{v['label']}: {v['text']}" for v in verdicts if v["status"] != "wins"))
        ratios = [c["rmse"]["best_lofo"]["mean"] / c["rmse"][BEST]["mean"] for c in cells
                  if BEST in c.get("rmse", {}) and "best_lofo" in c.get("rmse", {})]
        if ratios:
            lo, hi = min(ratios), max(ratios)
            times = f"{lo:.1f}×" if round(lo, 1) == round(hi, 1) else f"{lo:.1f}–{hi:.1f}×"
            text += f"; its RMSE is {times} that of {label(BEST)} trained on every family."
        else:
            text += "."
        records = [(cell_label(c), c["diagnostics_by_method"]["best_lofo"]) for c in cells
                   if "cov80" in (c.get("diagnostics_by_method") or {}).get("best_lofo", {})]
        if records:
            # Judged cell by cell: a cell inside the band is called nominal even when another is not.
            def cov(d):
                return " / ".join(f"{d[f'cov{round(100 * level)}']:.3f}" for level in LEVELS)

            def ok(d):
                return all(abs(d[f"cov{round(100 * level)}"] - level) <= tol for level in LEVELS)

            good = [f"{cell} ({cov(d)})" for cell, d in records if ok(d)]
            bad = [(cell, d) for cell, d in records if not ok(d)]
            band = f"within {tol * 100:.0f} points of 0.80 / 0.95"
            if good:
                text += f" Held-out coverage (cov80 / cov95) is nominal, {band}, in {', '.join(good)}."
            if bad:
                under = all(d[f"cov{round(100 * level)}"] <= level + tol for _, d in bad for level in LEVELS)
                text += ((" It is" if good else " Held-out coverage (cov80 / cov95) is")
                         + f" not nominal in {', '.join(f'{cell} ({cov(d)})' for cell, d in bad)}"
                         + (" — the intervals are too narrow on the unseen family." if under else "."))
        notes.append(text)
    return notes


# --------------------------------------------------------------------------- outside the prior

def outside_cells(result: dict) -> list:
    """The section on families and a mask "best" never trained on ([] when the run had none)."""
    cells = result.get("outside")
    return cells if isinstance(cells, list) else []


def outside_table(result: dict) -> tuple:
    """(rows, bold) for the outside section: one row per cell, the baselines and "best" as
    "mean ± SE" text, "cov80" / "cov95" of best (floats), and the ratio of best's RMSE to the best
    classical baseline's ("× classical"). bold: best in the row and ties within one SE."""
    rows, bold = [], []
    for c in outside_cells(result):
        rmse = c.get("rmse", {})
        methods = [m for m in LOFO_BASELINES + (BEST,) if m in rmse]
        d = (c.get("diagnostics_by_method") or {}).get(BEST, {})
        rows.append({"cell": cell_label(c)} | {m: _fmt_score(rmse[m]) for m in methods}
                    | {"× classical": _num(_classical_ratio(rmse)), "cov80": _num(d.get("cov80")),
                       "cov95": _num(d.get("cov95"))})
        best = best_in_row(rmse)
        bold.append({m: m in best for m in methods})
    return rows, bold


def _classical_ratio(rmse: dict):
    """best's mean RMSE over the lowest classical baseline's (None without both)."""
    classical = [rmse[m]["mean"] for m in LOFO_BASELINES if m in rmse]
    return rmse[BEST]["mean"] / min(classical) if BEST in rmse and classical else None


def outside_notes(result: dict, label=_identity, tol: float = NOMINAL_TOL) -> list:
    """Plain sentences: where "best" wins outside its prior, by how much, and where its coverage is
    not nominal (cell by cell, within ``tol`` of each level)."""
    cells = outside_cells(result)
    if not cells:
        return []
    verdicts = best_verdicts(cells, "rmse", BEST, label, rivals=LOFO_BASELINES)
    notes = [verdict_summary(verdicts, BEST, label)]
    ratios = [r for r in (_classical_ratio(c.get("rmse", {})) for c in cells) if r is not None]
    if ratios:
        notes.append(f"Its RMSE is {min(ratios):.2f}–{max(ratios):.2f}× that of the best classical baseline "
                     "of each cell.")
    off = [(cell_label(c), c["diagnostics_by_method"][BEST]) for c in cells
           if "cov80" in (c.get("diagnostics_by_method") or {}).get(BEST, {})]
    bad = [(name, d) for name, d in off if any(abs(d[f"cov{round(100 * lv)}"] - lv) > tol for lv in LEVELS)]
    if bad:
        under = all(d[f"cov{round(100 * lv)}"] <= lv + tol for _, d in bad for lv in LEVELS)
        notes.append("Coverage (cov80 / cov95) is not nominal in "
                     + ", ".join(f"{name} ({d['cov80']:.3f} / {d['cov95']:.3f})" for name, d in bad)
                     + (": the intervals are too narrow where the prior has never seen the shape."
                        if under else "."))
    elif off:
        notes.append(f"Coverage is nominal, within {tol * 100:.0f} points of 0.80 / 0.95, in every cell.")
    return notes


# --------------------------------------------------------------------------- the model manifests

def best_manifest_summary(manifest: dict) -> dict:
    """Headline facts of a "best" manifest (weights/best.json) for display (absent keys left out)."""
    data = manifest.get("data") or {}
    train = data.get("train") or {}
    cal = data.get("calibration") or {}
    conformal = manifest.get("conformal") or {}
    facts = {
        "description": manifest.get("description"),
        "prior components": ", ".join(manifest.get("components") or []) or None,
        "training data": ", ".join(f"{n['n']} {FAMILY_LABELS.get(f, f)} (seed {n.get('seed')})"
                                   for f, n in train.items()) or None,
        "calibration (conformal)": (f"{cal.get('n_per_cell')} surfaces per cell on {len(cal.get('cells', []))} cells, "
                                    "own seeds " + " / ".join(f"{k} {v}" for k, v in (cal.get("seeds") or {}).items())
                                    if cal else None),
        "conformal scores": sum((conformal.get("n_scores") or {}).values()) or None,
        "fit time (s)": manifest.get("fit_seconds"),
        "total time with calibration and validation (s)": manifest.get("total_seconds"),
        "fitted on": manifest.get("date"),
        "torch": manifest.get("torch_version"),
    }
    return {k: v for k, v in facts.items() if v is not None}


def validation_rows(manifest: dict) -> list:
    """The manifest's validation per cell: RMSE after the full projection (mean, SE), cov80, cov95."""
    rows = []
    for cell, v in (manifest.get("validation") or {}).items():
        family, _, mask = cell.partition("/")
        score = v.get("rmse_full") or {}
        rows.append({"cell": cell_label({"family": family, "mask": mask}),
                     "rmse": _fmt_score(score) if score else "—", "cov80": _num(v.get("cov80")),
                     "cov95": _num(v.get("cov95"))})
    return rows


def conformal_rows(manifest: dict) -> list:
    """Conformal multipliers q (half-width = q x sd) per level, beside the Gaussian z of that level."""
    quantiles = (manifest.get("conformal") or {}).get("quantiles") or {}
    group = quantiles.get("0") or (next(iter(quantiles.values())) if quantiles else {})
    return [{"level": float(a), "q": float(q), "gaussian_z": NormalDist().inv_cdf(0.5 + float(a) / 2)}
            for a, q in sorted(group.items(), key=lambda kv: float(kv[0]))]


def full_projection_note(cell: dict, label=_identity) -> str:
    """One sentence for a cell: what is left of g(k) < 0 and calendar arbitrage after the full projection."""
    by_method = cell.get("diagnostics_by_method") or {}
    rows = {m: d for m, d in by_method.items() if "g_negative_full" in d}
    if not rows:
        return "These results carry no full-projection rates."
    left = {m: d for m, d in rows.items() if d["g_negative_full"] > 0 or d.get("calendar_full", 0) > 0}
    if not left:
        return (f"After the full projection (butterfly + calendar) g(k) < 0 and calendar rates are 0 for every "
                f"method in this cell ({', '.join(map(label, rows))}).")
    return "After the full projection, arbitrage is left for " + "; ".join(
        f"{label(m)} (g(k) < 0 {pct(d['g_negative_full'], 2)}, calendar {pct(d.get('calendar_full', 0), 2)})"
        for m, d in left.items()) + "."


def _score_rows(cells: list, key: str, methods: list, extra=lambda c: {}) -> list:
    """Long rows: one per (cell, method) with the ``key`` score's mean and SE in vol units."""
    return [{"cell": cell_label(c), "method": m} | extra(c) | {f"{key}_mean": _num(c[key][m].get("mean")),
                                                               f"{key}_se": _num(c[key][m].get("se"))}
            for c in cells for m in methods if m in (c.get(key) or {})]


def benchmark_tables(result: dict) -> dict:
    """The Benchmark page's tables as plain numbers for download: {file name: DataFrame}. Vols in
    implied-vol units and rates as fractions, at full precision (the page shows them rounded, in
    vol points and percent)."""
    import pandas as pd

    methods = result_methods(result)
    tables = {
        "rmse.csv": _score_rows(result["cells"], "rmse", methods,
                                lambda c: {"observed_fraction": _num(c.get("observed_fraction"))}),
        "projections.csv": projection_rows(result),
        # The benchmark's own keys as column names: the page's titles carry its display units.
        "uncertainty.csv": [{ {v: k for k, v in UNCERTAINTY_COLUMNS.items()}.get(c, c): x for c, x in r.items()}
                            for r in diagnostics_table(result)],
        "stale_auc.csv": [{"cell": r["cell"], "method": m, "stale_auc": v}
                          for r in metric_table(result, "stale_auc")[0] for m, v in r.items() if m != "cell"],
        "downstream_svi.csv": _score_rows(result["cells"], "downstream_svi", methods),
    }
    lofo = []
    for block in lofo_blocks(result):
        held = HELD_OUT_LABELS.get(block.get("held_out"), block.get("held_out"))
        for row in _score_rows(block.get("cells", []), "rmse", sorted({m for c in block.get("cells", [])
                                                                         for m in c.get("rmse", {})})):
            lofo.append({"held out": held} | row)
    if lofo:
        tables["lofo.csv"] = lofo
    outside = _score_rows(outside_cells(result), "rmse", sorted({m for c in outside_cells(result) for m in c.get("rmse", {})}))
    if outside:
        tables["outside.csv"] = outside
    return {name: pd.DataFrame(rows) for name, rows in tables.items() if rows}


def tables_zip(tables: dict) -> bytes:
    """{file name: DataFrame} as one zip of CSVs."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, frame in tables.items():
            z.writestr(name, frame.to_csv(index=False))
    return buffer.getvalue()
