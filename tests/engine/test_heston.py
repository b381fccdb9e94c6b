"""core.engine.heston: characteristic function, prices against independent slow references, wing
accuracy, the xi -> 0 limit, and the generator's contract (shape, positivity, calendar,
parameter ranges, determinism)."""
from __future__ import annotations

import numpy as np
import pytest

from core.engine.black import implied_vol
from core.engine.grid import K_GRID, T_GRID
from core.engine.heston import (
    HESTON_RANGES,
    PARAM_NAMES,
    QuadConfig,
    draw_heston_params,
    heston_call_prices,
    heston_implied_vol,
    heston_log_cf,
    heston_log_mgf,
    heston_surfaces,
    heston_total_variance,
)
from tests.engine.heston_reference import (
    explosion_time,
    lewis_call_price,
    riccati_log_mgf,
    saddle_otm_price,
)

# (v0, theta, kappa, xi, rho): a typical index set, a low-Feller set (2 kappa theta/xi^2 = 0.09,
# heavy CF tail), and a short-end stress set (low v0, high xi, rho = -0.88: T = 0.08 call-wing
# prices ~1e-20 with the saddle crowded against the moment explosion).
TYPICAL = (0.04, 0.05, 2.0, 0.6, -0.7)
LOW_FELLER = (0.057, 0.025, 1.22, 0.84, -0.75)
STRESS = (0.014, 0.037, 3.45, 1.0, -0.88)


@pytest.fixture(scope="module")
def batch():
    return heston_surfaces(48, seed=123)


# --------------------------------------------------------------------------------------------
# Characteristic function
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [TYPICAL, LOW_FELLER, STRESS])
@pytest.mark.parametrize("T", [0.08, 2.0])
def test_cf_matches_riccati_ode(params, T):
    """The closed form (with its branch choices) equals a numerical solve of the Riccati ODEs,
    on and off the real axis, at contour shifts the pricer actually uses."""
    plus = next(w for w in (40.0, 20.0, 8.0, 3.0) if explosion_time(w, params) > T)
    minus = next(w for w in (-20.0, -8.0, -2.0, -0.5) if explosion_time(w, params) > T)
    for z in (0.5 + 5j, plus + 1j, plus + 30j, minus + 0.5j, minus + 60j, 2.0 + 150j):
        ode = riccati_log_mgf(z, T, *params)
        closed = complex(heston_log_cf(np.complex128(z), T, *params))
        assert abs(np.exp(closed - ode) - 1.0) < 1e-9, (z, closed, ode)


@pytest.mark.parametrize("params", [TYPICAL, STRESS])
def test_real_mgf_finite_exactly_inside_explosion_strip(params):
    T = 0.08
    for w in np.concatenate([np.geomspace(1.01, 400, 25), -np.geomspace(0.01, 400, 25)]):
        lm = heston_log_mgf(w, T, *params)
        if explosion_time(w, params) > T * 1.001:
            assert np.isfinite(lm)
            assert lm == pytest.approx(heston_log_cf(np.complex128(w), T, *params).real, abs=1e-9)
        elif explosion_time(w, params) < T * 0.999:
            assert lm == np.inf


# --------------------------------------------------------------------------------------------
# Prices and implied vols against slow references
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", [TYPICAL, LOW_FELLER, STRESS, (0.16, 0.12, 0.5, 1.2, -0.1)])
def test_call_prices_match_lewis_quadrature(params):
    """Absolute price check against scipy quad on the standard Lewis contour (tolerance 1e-8;
    the two agree to ~1e-11)."""
    T = np.array([0.08, 0.5, 2.0])
    k = np.array([-0.45, -0.2, 0.0, 0.2, 0.45])
    fast = heston_call_prices(params, T, k)[0]
    for i, t in enumerate(T):
        for j, kj in enumerate(k):
            assert fast[i, j] == pytest.approx(lewis_call_price(kj, t, params), abs=1e-8)


@pytest.mark.parametrize("params", [TYPICAL, STRESS])
def test_wing_implied_vols_match_saddle_reference(params):
    """At T = 0.08 the wing prices are 1e-12..1e-23: only relative accuracy gives their vol.
    The per-strike adaptive-quad reference and our shared-contour rule must agree to 1e-6."""
    T = 0.08
    k = np.array([-0.45, -0.3375, 0.3375, 0.45])
    iv = heston_implied_vol(params, [T], k)[0, 0]
    for j, kj in enumerate(k):
        price = saddle_otm_price(kj, T, params)
        ref = implied_vol(price, 1.0, np.exp(kj), T, kj >= 0)
        assert np.isfinite(ref) and abs(iv[j] - ref) < 1e-6, (kj, iv[j], ref, price)


def test_xi_to_zero_gives_deterministic_variance_black_vol():
    """With xi -> 0 the variance is deterministic: iv = sqrt(w_bar / T), flat in k, with
    w_bar = theta T + (v0 - theta)(1 - e^{-kappa T})/kappa.  The gap is first order in xi."""
    v0, theta, kappa, rho = 0.03, 0.09, 1.5, -0.6
    T = np.array([0.08, 0.5, 2.0])
    w_bar = theta * T + (v0 - theta) * (1 - np.exp(-kappa * T)) / kappa
    flat = np.sqrt(w_bar / T)[:, None]
    gaps = []
    for xi in (1e-2, 1e-3, 1e-4):
        params = {"v0": v0, "theta": theta, "kappa": kappa, "xi": xi, "rho": rho}
        iv = heston_implied_vol(params, T, K_GRID)[0]
        gaps.append(np.abs(iv - flat).max())
    assert gaps[-1] < 1e-4
    assert gaps[0] / gaps[1] == pytest.approx(10, rel=0.2)   # linear in xi: no numerical floor
    assert gaps[1] / gaps[2] == pytest.approx(10, rel=0.2)


def test_denser_quadrature_changes_nothing(batch):
    """Self-consistency over a whole batch: doubling every node count moves no vol by > 1e-6."""
    sub = {name: batch.params[name][:12] for name in PARAM_NAMES}
    dense = QuadConfig(n_core=48, nodes_per_period=6.0, tail_rel_tol=1e-12,
                       tail_buckets=(32, 64, 128, 256, 512, 1024))
    a = heston_implied_vol(sub, T_GRID, K_GRID)
    b = heston_implied_vol(sub, T_GRID, K_GRID, dense)
    assert np.abs(a - b).max() < 1e-6


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------

def test_generator_shape_finite_positive_calendar(batch):
    w = batch.w
    assert w.shape == (48, 13, 17) and w.dtype == np.float64
    assert np.isfinite(w).all() and (w > 0).all()
    assert (np.diff(w, axis=-2) >= 0).all()
    # Heston total variance increases in T by itself: the cummax safety net should be idle
    assert batch.calendar_fixed == 0


def test_generator_params_inside_ranges_and_match_surfaces(batch):
    for name in PARAM_NAMES:
        lo, hi = HESTON_RANGES[name]
        vals = batch.params[name]
        assert vals.shape == (48,) and (vals >= lo).all() and (vals <= hi).all()
    # the returned parameters are the ones the surfaces came from
    P = np.column_stack([batch.params[name][:3] for name in PARAM_NAMES])
    iv = heston_implied_vol(P, T_GRID, K_GRID)
    np.testing.assert_allclose(iv * iv * T_GRID[:, None], batch.w[:3], rtol=1e-12)


def test_parameter_draws_cover_ranges():
    params = draw_heston_params(20_000, np.random.default_rng(0))
    for name in PARAM_NAMES:
        lo, hi = HESTON_RANGES[name]
        span = hi - lo
        assert params[name].min() < lo + 0.01 * span and params[name].max() > hi - 0.01 * span


def test_surfaces_look_like_equity_index_smiles(batch):
    iv = np.sqrt(batch.w / T_GRID[:, None])
    atm = iv[:, :, 8]
    assert 0.05 < atm.min() and atm.max() < 0.5
    # negative rho: downside vols above upside vols near the money, at every maturity
    assert (iv[:, :, 6] > iv[:, :, 10]).all()


def test_same_seed_same_output_different_seed_different():
    a, pa = heston_total_variance(6, seed=7, return_params=True)
    b, pb = heston_total_variance(6, seed=7, return_params=True)
    c = heston_total_variance(6, seed=8)
    np.testing.assert_array_equal(a, b)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(pa[name], pb[name])
    assert not np.allclose(a, c)


def test_threads_and_chunking_do_not_change_results():
    quad = QuadConfig(chunk_slices=20)
    a = heston_total_variance(5, seed=3)
    b = heston_total_variance(5, seed=3, workers=2, quad=quad)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="xi"):
        heston_call_prices((0.04, 0.04, 1.0, 0.0, -0.5), [1.0], [0.0])
    with pytest.raises(ValueError, match="rho"):
        heston_call_prices((0.04, 0.04, 1.0, 0.5, -1.0), [1.0], [0.0])
    with pytest.raises(ValueError, match="T"):
        heston_call_prices(TYPICAL, [0.0], [0.0])
    with pytest.raises(ValueError, match="params"):
        heston_call_prices(np.ones((3, 4)), [1.0], [0.0])
    with pytest.raises(ValueError, match="n"):
        heston_total_variance(0, seed=1)


def test_failed_slices_are_retried_on_the_dense_rule(monkeypatch):
    """The generator's fallback (never needed in the box so far) must kick in and agree."""
    import core.engine.heston as heston

    clean = heston_total_variance(3, seed=5)
    real = heston.heston_implied_vol
    seen = []

    def flaky(params, T, k, quad=heston.DEFAULT_QUAD, workers=1):
        iv = real(params, T, k, quad, workers)
        seen.append(quad)
        if len(seen) == 1:
            iv[1, 0, -1] = np.nan                       # pretend one short-dated wing failed
        return iv

    monkeypatch.setattr(heston, "heston_implied_vol", flaky)
    res = heston.heston_surfaces(3, seed=5)
    assert len(seen) == 2 and seen[1].n_core > seen[0].n_core
    np.testing.assert_allclose(res.w, clean, rtol=1e-8)
