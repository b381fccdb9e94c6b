"""Volatility-surface repair engine.

Public API: ``repair(iv_obs, method)``, ``METHODS``, ``T_GRID`` (years), ``K_GRID`` (log-moneyness).

The grid is imported eagerly; the repair API (which needs torch and scipy, ~3 s to import on our
2-core machines) loads on first use, so torch-free modules such as ``core.report`` stay quick to
import (the dashboard's landing page renders from them before torch has loaded).
"""
import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS so the cap below reaches it too)
from threadpoolctl import threadpool_limits

from core.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv

# Every BLAS/LAPACK call in the engine is on tiny matrices (13 x 17 grids, 2 x 2 barycentric
# systems); a threaded OpenBLAS spends far more on thread hand-offs than on work, and on a
# loaded 2-core machine it made interpolation and the SVI search 10-50x slower (measured).
threadpool_limits(limits=1, user_api="blas")

_LAZY = {"repair": "core.api", "RepairResult": "core.api", "validate_iv_obs": "core.api",
         "METHODS": "core.methods"}

__all__ = ["repair", "RepairResult", "validate_iv_obs", "METHODS", "K_GRID", "T_GRID", "N_T", "N_K",
           "iv_to_w", "w_to_iv"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'core' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
