"""Volatility-surface repair engine.

Public API: ``repair(iv_obs, method)``, ``METHODS``, ``T_GRID`` (years), ``K_GRID`` (log-moneyness).
"""
from threadpoolctl import threadpool_limits

from core.api import RepairResult, repair, validate_iv_obs
from core.grid import K_GRID, N_K, N_T, T_GRID, iv_to_w, w_to_iv
from core.methods import METHODS

# Every BLAS/LAPACK call in the engine is on tiny matrices (13 x 17 grids, 2 x 2 barycentric
# systems); a threaded OpenBLAS spends far more on thread hand-offs than on work, and on a
# loaded 2-core machine it made interpolation and the SVI search 10-50x slower. Torch keeps
# its own threads.
threadpool_limits(limits=1, user_api="blas")

__all__ = ["repair", "RepairResult", "validate_iv_obs", "METHODS", "K_GRID", "T_GRID", "N_T", "N_K",
           "iv_to_w", "w_to_iv"]
