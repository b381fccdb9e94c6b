"""Volatility-surface repair engine.

Public API: ``repair(iv_obs, method)``, ``RepairResult``, ``METHODS``, ``T_GRID`` (years),
``K_GRID`` (log-moneyness). The grid loads eagerly; the repair pipeline (torch, scipy) loads on
first use, so ``import core`` stays quick and sets nothing process-wide (see core.settings).
"""
from core.engine.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv

_LAZY = {"repair": "core.pipeline", "RepairResult": "core.pipeline", "validate_iv_obs": "core.pipeline",
         "METHODS": "core.repairers.registry", "DEFAULT_METHOD": "core.repairers.registry"}

__all__ = ["repair", "RepairResult", "validate_iv_obs", "METHODS", "DEFAULT_METHOD", "K_GRID", "T_GRID",
           "N_T", "N_K", "iv_to_w", "w_to_iv"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'core' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
