"""Volatility-surface repair engine."""
from core.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv

__all__ = ["K_GRID", "T_GRID", "N_T", "N_K", "iv_to_w", "w_to_iv"]
