"""Forward-normalised Black prices in log space (F = 1, no discounting), for the chain surface.

The OTM option is the put for k < 0 and the call for k >= 0. Prices are kept as logs so that the
deep wings of one-day expiries (prices far below 1e-300) still order and invert correctly.
"""
from __future__ import annotations

import numpy as np

from core.engine.black import implied_total_vol_otm, normalised_log_price

W_MIN = 1e-12           # total variance treated as zero (the price is then intrinsic)


def log_otm_price(k, w) -> np.ndarray:
    """ln of the OTM price (F = 1) at log-moneyness k and total variance w (broadcast)."""
    k, w = np.broadcast_arrays(np.asarray(k, np.float64), np.asarray(w, np.float64))
    s = np.sqrt(np.maximum(w, W_MIN))
    # core.engine.black's b(x, s) is the price over sqrt(K) (F = 1) with x = -|k|
    return normalised_log_price(-np.abs(k), s) + 0.5 * k


def otm_upper_log(k) -> np.ndarray:
    """ln of the OTM price at infinite variance: F = 1 for calls, K = e^k for puts."""
    return np.minimum(np.asarray(k, np.float64), 0.0)


def call_from_log_otm(k, log_price) -> np.ndarray:
    """Forward-normalised call C / (D F) from the log OTM price: put-call parity below the forward."""
    k = np.asarray(k, np.float64)
    return np.exp(log_price) + np.maximum(1.0 - np.exp(k), 0.0)


def w_from_log_otm(k, log_price) -> np.ndarray:
    """Total variance implied by a log OTM price (NaN where the price is not below its upper bound)."""
    return implied_total_vol_otm(k, log_price) ** 2


def mix_log(log_a, log_b, weight_a) -> np.ndarray:
    """ln(weight_a e^log_a + (1 - weight_a) e^log_b), weight_a in [0, 1], without underflow."""
    weight_a = np.asarray(weight_a, np.float64)
    with np.errstate(divide="ignore"):
        return np.logaddexp(np.log(weight_a) + log_a, np.log1p(-weight_a) + log_b)
