"""Volatility-surface repair engine.

Public API: ``repair(iv_obs, method)``, ``METHODS``, ``T_GRID`` (years), ``K_GRID`` (log-moneyness).
"""
from core.api import RepairResult, repair, validate_iv_obs
from core.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.methods import METHODS

__all__ = ["repair", "RepairResult", "validate_iv_obs", "METHODS", "K_GRID", "T_GRID", "N_T", "N_K",
           "iv_to_w", "w_to_iv"]
