"""The lognormal-mixture families (core.synth.mixtures) and the liquidity mask."""
import numpy as np
import pytest

from core.engine.arbitrage import butterfly_violation_rate, calendar_violation_rate
from core.engine.black import black_price
from core.engine.grid import ATM_INDEX, K_GRID, T_GRID
from core.synth.missingness import make_masks
from core.synth.mixtures import (
    MERTON_RANGES,
    lognormal_mixture_total_variance,
    merton_total_variance,
    mixture_otm_price,
)


def test_one_component_is_black():
    k = np.array([-0.6, -0.1, 0.0, 0.3, 0.9])
    price = mixture_otm_price(k, np.ones((5, 1)), np.zeros((5, 1)), np.full((5, 1), 0.09))
    np.testing.assert_allclose(price, black_price(1.0, np.exp(k), 1.0, 0.3, k >= 0), rtol=1e-12)


def test_a_component_beyond_the_strike_adds_its_intrinsic_value():
    # one component with forward 1.3: the k = 0.1 call is in the money for it (parity inside the sum)
    price = mixture_otm_price(np.array([0.1]), np.ones((1, 1)), np.log([[1.3]]), np.array([[0.04]]))
    np.testing.assert_allclose(price, black_price(1.3, np.exp(0.1), 1.0, 0.2, True), rtol=1e-12)


def _merton_monte_carlo(p: dict, T: float, k: np.ndarray, paths: int = 400_000) -> tuple:
    """OTM prices (and their standard errors) of the Merton model by simulation, drawn
    independently of the Poisson-sum formula: jump counts, jump sizes and the diffusion."""
    rng = np.random.default_rng(0)
    a, b = p["vol_long"] ** 2, p["vol_short"] ** 2 - p["vol_long"] ** 2
    v = a * T + b * (1 - np.exp(-p["kappa"] * T)) / p["kappa"]
    n = rng.poisson(p["lam"] * T, paths)
    jumps = n * p["jump_mean"] + np.sqrt(n) * p["jump_sd"] * rng.standard_normal(paths)
    drift = -0.5 * v - p["lam"] * T * (np.exp(p["jump_mean"] + 0.5 * p["jump_sd"] ** 2) - 1)
    S = np.exp(drift + np.sqrt(v) * rng.standard_normal(paths) + jumps)
    K = np.exp(k)[:, None]
    payoff = np.where(k[:, None] >= 0, np.maximum(S[None, :] - K, 0), np.maximum(K - S[None, :], 0))
    return payoff.mean(1), payoff.std(1) / np.sqrt(paths)


def test_merton_prices_match_a_monte_carlo_of_the_model():
    w, p = merton_total_variance(3, seed=8, return_params=True)
    for s in range(3):
        ps = {name: p[name][s] for name in MERTON_RANGES}
        for t in (0, 6, 12):
            T = T_GRID[t]
            iv = np.sqrt(w[s, t] / T)
            model = black_price(1.0, np.exp(K_GRID), T, iv, K_GRID >= 0)
            mc, se = _merton_monte_carlo(ps, T, K_GRID)
            # compared where the simulation resolves the price (a few hundred paths in the money)
            ok = mc > 20 * se
            assert ok.sum() >= 5
            assert np.all(np.abs(model[ok] - mc[ok]) < 4.5 * se[ok] + 1e-6), (s, t)


@pytest.mark.parametrize("generator", [merton_total_variance, lognormal_mixture_total_variance])
def test_mixture_surfaces_are_arbitrage_free_on_the_grid(generator):
    w = generator(300, seed=3)
    assert np.isfinite(w).all() and (w > 0).all()
    assert calendar_violation_rate(w) == 0.0
    # each slice is a proper density (a mixture of lognormals): no butterfly arbitrage
    assert butterfly_violation_rate(w) == 0.0


def test_merton_short_end_skew_is_steeper_than_the_long_end():
    w = merton_total_variance(2000, seed=4)
    iv = np.sqrt(w / T_GRID[None, :, None])
    skew = (iv[:, :, 5] - iv[:, :, 11]) / (K_GRID[11] - K_GRID[5])     # -d iv / dk over |k| <= 0.17
    assert np.median(skew[:, 0]) > 2 * np.median(skew[:, -1]) > 0


def test_mixture_regimes_follow_the_equity_rule_mostly():
    w = lognormal_mixture_total_variance(2000, seed=6)
    iv = np.sqrt(w[:, -1] / T_GRID[-1])
    assert np.mean(iv[:, 5] > iv[:, 11]) > 0.6      # most long-dated smiles skew down, not all
    assert np.mean(iv[:, 5] < iv[:, 11]) > 0.1


def test_liquidity_mask_quotes_a_band_widening_with_sqrt_T():
    m = make_masks("liquidity", 2000, seed=9)
    assert m.sum(axis=(1, 2)).min() >= 18
    density = m.mean(axis=(0, 2))
    assert density[0] < 0.5 * density[-1]                       # the short end is quoted narrowly
    far = np.abs(K_GRID) > 1.8 * 0.45 * np.sqrt(T_GRID[0])     # beyond the widest band at T = 0.08
    extra = m[:, 0, far].mean()
    assert extra < 0.01                                         # only the MIN_MASK_QUOTES top-up lands there
    assert m[:, :, ATM_INDEX].mean() > 0.6
    np.testing.assert_array_equal(m, make_masks("liquidity", 2000, seed=9))
