"""SSVI (Gatheral & Jacquier 2014): the one implementation the generators, the explorer and the
synthetic chains share.

w(k, theta) = theta / 2 * (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2)), with theta the ATM
total variance of a maturity and phi = eta / theta^gamma (the power-law curvature used throughout).
"""
from __future__ import annotations

import numpy as np

THETA_FLOOR = 0.004       # lowest ATM total variance the generators' theta(T) reaches
PHI_THETA_FLOOR = 1e-4    # theta floor inside phi, so phi stays finite as theta -> 0


def ssvi_total_variance(theta, rho, phi, k) -> np.ndarray:
    """SSVI total variance, numpy-broadcast over theta, rho, phi and k (log-moneyness)."""
    x = phi * k + rho
    return 0.5 * theta * (1.0 + rho * phi * k + np.sqrt(x * x + 1.0 - rho * rho))


def power_law_phi(theta, eta, gamma) -> np.ndarray:
    """phi(theta) = eta / theta^gamma, with theta floored at PHI_THETA_FLOOR."""
    return eta / np.maximum(theta, PHI_THETA_FLOOR) ** gamma


def theta_quadratic(theta0, slope, curve, t_scaled) -> np.ndarray:
    """The generators' raw ATM total variance: theta0 + slope t + curve t^2 (t = T / T_max),
    floored at THETA_FLOOR; callers make it non-decreasing in T."""
    return np.maximum(theta0 + slope * t_scaled + curve * t_scaled**2, THETA_FLOOR)
