"""The real-chain benchmark (core.evaluation.real) as the Benchmark page shows it.

Reads ``results/real_benchmark.json`` (or $REPAIR_REAL_BENCHMARK_JSON), written by
``python -m core.benchmark --real ../shared/real --json results/real_benchmark.json``. Streamlit-free.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from core.evaluation.real_tables import PROTOCOL_LABELS
from core.settings import RESULTS_DIR
from ui import numbers

REAL_JSON = RESULTS_DIR / "real_benchmark.json"
REAL_ENV = "REPAIR_REAL_BENCHMARK_JSON"
WITHIN = 0.05     # "within 5 % of the lowest" counts as a tie for the win count (issue 11's rule)


def real_json_path() -> Path:
    return Path(os.environ.get(REAL_ENV) or REAL_JSON)


def load_real(path: Path | None = None) -> dict:
    """The real-benchmark JSON; ValueError with a one-line reason when missing or malformed."""
    path = Path(path or real_json_path())
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"real-chain results not found: {path} (run `python -m core.benchmark --real DIR "
                         f"--json {path}`)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"real-chain results {path} are unreadable: {' '.join(str(exc).split())}") from None
    if not (isinstance(result, dict) and isinstance(result.get("chains"), dict)
            and isinstance(result.get("config"), dict) and "methods" in result["config"]):
        raise ValueError(f"real-chain results {path} lack their chains or methods")
    return result


def _rmse(summary) -> float | None:
    return summary["rmse"]["mean"] if summary and summary["rmse"]["mean"] is not None else None


def rmse_frame(result: dict) -> pd.DataFrame:
    """One row per chain x protocol, one column per method: held-out RMSE in vol points (mean),
    plus ``lowest`` (the method with the lowest mean)."""
    methods = result["config"]["methods"]
    rows = []
    for chain, info in result["chains"].items():
        for protocol, row in info["protocols"].items():
            scores = {m: _rmse(row.get(m)) for m in methods}
            rec = {"chain": chain, "protocol": PROTOCOL_LABELS.get(protocol, protocol)}
            rec.update({m: None if v is None else numbers.VOL_POINTS * v for m, v in scores.items()})
            known = {m: v for m, v in scores.items() if v is not None}
            rec["lowest"] = min(known, key=known.get) if known else None
            rows.append(rec)
    return pd.DataFrame(rows)


def losses(result: dict, method: str) -> list:
    """Plain sentences for every cell where ``method`` is neither the lowest nor within 5 % of it."""
    out = []
    for chain, info in result["chains"].items():
        for protocol, row in info["protocols"].items():
            scores = {m: _rmse(s) for m, s in row.items() if _rmse(s) is not None}
            if method not in scores or not scores:
                continue
            best = min(scores, key=scores.get)
            if scores[method] > (1 + WITHIN) * scores[best]:
                out.append(f"{chain}, {PROTOCOL_LABELS.get(protocol, protocol)}: {method} "
                           f"{100 * scores[method]:.2f} vol points against {best} {100 * scores[best]:.2f}")
    return out


def sampled(result: dict) -> str | None:
    """One sentence naming the methods the run scored on a subsample (core.evaluation.real: the
    first draws and evenly spaced hidden expiries), or None. Older JSONs name only ``ah_*``."""
    cfg = result.get("config", {})
    names = cfg.get("sampled", ["ah"] if cfg.get("ah_draws") or cfg.get("ah_max_expiries") else [])
    draws = cfg.get("sampled_draws", cfg.get("ah_draws"))
    expiries = cfg.get("sampled_max_expiries", cfg.get("ah_max_expiries"))
    names = [m for m in names if m in cfg.get("methods", [])]
    if not names or not (draws or expiries):
        return None
    parts = ([f"{draws} random draws"] if draws else []) + ([f"{expiries} hidden expiries"] if expiries else [])
    return f"{', '.join(names)} scored on a subsample: {' and '.join(parts)} (their cells' standard errors are wider)."


def surface_only(result: dict, method: str) -> str | None:
    """One sentence: ``method``'s random-protocol RMSE of its bare surface per chain, where that
    differs from its quote prediction (svi_gp adds each quote's put-call offset); None otherwise."""
    parts = []
    for chain, info in result["chains"].items():
        s = info["protocols"].get("random", {}).get(method)
        surf = (s or {}).get("surface_rmse") or {}
        if surf.get("mean") is not None and _rmse(s) is not None and abs(surf["mean"] - _rmse(s)) > 1e-12:
            parts.append(f"{chain} {100 * surf['mean']:.2f}")
    if not parts:
        return None
    return (f"{method} predicts each held-out quote with the surface plus its side's fitted put–call offset "
            f"(the surface itself stays continuous); its bare surface's RMSE on the random protocol, in vol "
            f"points: " + ", ".join(parts) + ".")
