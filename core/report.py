"""Reading what the engine wrote: benchmark results, the weights manifest, and their tables.

Torch-free on purpose (only json, numpy): the dashboard's landing page renders from this module
before torch has loaded, which keeps cold start short. ``best_in_row`` comes from the JSON's own
"best" list when present (core.benchmark wrote it), else from core.benchmark, imported on demand.

Paths can be overridden by environment variable: $REPAIR_CNN_WEIGHTS for the CNN weights (its
manifest is the .json beside it) and $REPAIR_BENCHMARK_JSON for the results the app shows.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ROOT / "weights" / "cnn.pt"          # = core.model.WEIGHTS_DIR / "cnn.pt"
DEFAULT_JSON = ROOT / "results" / "benchmark.json"     # = core.benchmark.DEFAULT_JSON
WEIGHTS_ENV = "REPAIR_CNN_WEIGHTS"          # path of the CNN weights the app uses
RESULTS_ENV = "REPAIR_BENCHMARK_JSON"       # path of the benchmark results the app shows
FAMILY_LABELS = {"ssvi": "Training SSVI", "shifted_ssvi": "Shifted SSVI", "sabr_event": "SABR-event"}


def best_in_row(scores: dict) -> list:
    """core.benchmark.best_in_row (the tie rule lives there), imported on first use."""
    from core.benchmark import best_in_row as rule

    return rule(scores)


def cnn_weights_path() -> Path:
    """The CNN weights file the app uses: $REPAIR_CNN_WEIGHTS, else weights/cnn.pt."""
    return Path(os.environ.get(WEIGHTS_ENV) or DEFAULT_WEIGHTS)


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
    mean, se = score.get("mean", float("nan")), score.get("se", float("nan"))
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.4f} ± {se:.4f}" if np.isfinite(se) else f"{mean:.4f}"


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
        row = {"cell": cell_label(c), "obs %": f"{100 * c.get('observed_fraction', float('nan')):.1f}"}
        row.update({m: _fmt_score(scores[m]) if m in scores else "—" for m in methods})
        rows.append(row)
        bold.append({"cell": row["cell"], "obs %": False} | {m: m in best for m in methods})
    return rows, bold


DIAGNOSTIC_COLUMNS = {   # key -> (column title, scale to display)
    "raw_calendar": ("raw cal %", 100.0), "post_calendar": ("post cal %", 100.0),
    "g_negative": ("g(k)<0 %", 100.0), "cov80": ("cov80", 1.0), "cov95": ("cov95", 1.0),
    "err_sd_corr": ("err–sd corr", 1.0), "stale_auc": ("stale AUC", 1.0), "avg_sd": ("mean sd (vol)", 1.0),
}


def diagnostics_table(result: dict) -> list:
    """One row per (cell, method): the diagnostics of ``diagnostics_by_method`` (NaN where absent)."""
    rows = []
    for c in result["cells"]:
        by_method = c.get("diagnostics_by_method") or ({"cnn": c["diagnostics"]} if "diagnostics" in c else {})
        for m in [m for m in result_methods(result) if m in by_method]:
            d = by_method[m]
            row = {"cell": cell_label(c), "method": m}
            row.update({title: (d[key] * scale if key in d and d[key] is not None else float("nan"))
                        for key, (title, scale) in DIAGNOSTIC_COLUMNS.items()})
            rows.append(row)
    return rows


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


def err_sd_points(details: dict) -> dict:
    """{method: {"sd", "abs_err", "sd_max", "above80", "above95"}} from a cell's ``err_sd_sample``.

    above80 / above95: share of the sampled missing cells whose |error| exceeds 1.2816 / 1.96 sd,
    i.e. falls outside the nominal 80 % / 95 % interval.
    """
    out = {}
    for m, sample in (details.get("err_sd_sample") or {}).items():
        sd, err = np.asarray(sample["sd"], float), np.asarray(sample["abs_err"], float)
        if sd.size == 0:
            continue
        out[m] = {"sd": sd, "abs_err": err, "sd_max": float(sd.max()),
                  "above80": float(np.mean(err > 1.2816 * sd)), "above95": float(np.mean(err > 1.96 * sd))}
    return out
