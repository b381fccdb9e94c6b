"""Properties of core.engine.arbitrage: diagnostics, calendar and butterfly projections, project()."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from core.engine import arbitrage as arb
from core.engine.grid import DK, K_GRID, N_K, N_T, T_GRID, T_MESH, W_FLOOR
from core.synth.families import ssvi_w as ssvi_formula
from core.synth.missingness import noise_profile

# overflow or invalid values anywhere in the projection are bugs, not noise
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# ---------------------------------------------------------------------------------------------
# Test surfaces
# ---------------------------------------------------------------------------------------------


def ssvi_w(n: int, rng: np.random.Generator, eta_rho_cap: float | None = None,
           gamma_max: float = 0.78) -> np.ndarray:
    """SSVI total variance (n, 13, 17), phi = eta / theta**gamma, the post's shifted ranges.

    With eta_rho_cap=2 and gamma_max <= 0.5 the surfaces satisfy Gatheral-Jacquier's
    sufficient conditions (eta (1 + |rho|) <= 2, theta <= 1) and are butterfly-free.
    """
    theta0 = rng.uniform(0.006, 0.045, n)
    slope = rng.uniform(0.012, 0.095, n)
    curve = rng.uniform(-0.015, 0.020, n)
    rho = rng.uniform(-0.88, -0.05, n)
    eta = rng.uniform(0.35, 2.10, n)
    gamma = rng.uniform(0.08, gamma_max, n)
    if eta_rho_cap is not None:
        eta = np.minimum(eta, eta_rho_cap / (1.0 + np.abs(rho)))
    t = T_GRID / T_GRID[-1]
    theta = theta0[:, None] + slope[:, None] * t + curve[:, None] * t**2
    theta = np.maximum.accumulate(np.maximum(theta, 0.004), axis=1)          # (n, 13)
    return ssvi_formula(theta, rho, eta[:, None] / theta ** gamma[:, None])


def with_vol_noise(w: np.ndarray, rng: np.random.Generator, bps: float) -> np.ndarray:
    """Quote noise of `bps` vol basis points with the post's wing and front inflation."""
    noisy = np.clip(np.sqrt(w / T_MESH) + rng.normal(0.0, bps / 1e4, w.shape) * noise_profile(), 0.03, 2.0)
    return noisy**2 * T_MESH


def rough_w(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random rough fields: lognormal vols with no structure, big calendar and butterfly holes."""
    level = 0.2 * np.exp(0.5 * rng.standard_normal((n, 1, 1)))
    return (level * np.exp(0.4 * rng.standard_normal((n, N_T, N_K)))) ** 2 * T_MESH


def tiny_w(n: int, rng: np.random.Generator) -> np.ndarray:
    """Near-degenerate surfaces: total variance between the floor and 20 times it."""
    return W_FLOOR * np.exp(rng.uniform(0.0, 3.0, (n, N_T, N_K)))


def call_prices(w: np.ndarray) -> np.ndarray:
    """Undiscounted Black calls, forward 1, strikes exp(K_GRID): a plain textbook formula."""
    s = np.sqrt(w)
    d1 = -K_GRID / s + 0.5 * s
    return ndtr(d1) - np.exp(K_GRID) * ndtr(d1 - s)


def assert_arbitrage_free(w: np.ndarray) -> None:
    """Zero calendar and g violations, and call prices convex, decreasing, within bounds."""
    assert np.all(np.isfinite(w)) and np.all(w >= W_FLOOR)
    assert arb.calendar_violation_rate(w) == 0.0
    assert arb.butterfly_violation_rate(w) == 0.0
    assert arb.arbitrage_report(w) == {"calendar_rate": 0.0, "g_negative_rate": 0.0}
    c = call_prices(w)
    strike = np.exp(K_GRID)
    h = np.diff(strike)
    slope = np.diff(c, axis=-1) / h
    assert np.all(slope <= 1e-11 * c[..., :-1] / h + 1e-13) and np.all(slope >= -1.0 - 1e-12)
    # convex up to the documented tolerance: density >= -G_TOL x the flat-smile density
    s = np.sqrt(w[..., 1:-1])
    d2 = -K_GRID[1:-1] / s - 0.5 * s
    flat_density = np.exp(-0.5 * d2**2) / (np.sqrt(2 * np.pi) * strike[1:-1] * s)
    density = 2.0 / (h[:-1] + h[1:]) * np.diff(slope, axis=-1)
    assert np.all(density >= -arb.G_TOL * flat_density - 1e-10)
    assert np.all(c >= np.maximum(1.0 - strike, 0.0) - 1e-15) and np.all(c <= 1.0)


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


def test_g_field_is_the_posts_formula_node_by_node():
    w = with_vol_noise(ssvi_w(3, np.random.default_rng(0)), np.random.default_rng(1), 40.0)
    g = arb.g_field(w)
    assert g.shape == (3, N_T, N_K - 2)
    for n, t, i in [(0, 0, 0), (1, 5, 7), (2, 12, 14), (2, 3, 10)]:
        a, b, c = w[n, t, i], w[n, t, i + 1], w[n, t, i + 2]
        wi, k = max(b, 1e-6), K_GRID[i + 1]
        wp, wpp = (c - a) / (2 * DK), (c - 2 * b + a) / DK**2
        expected = (1 - k * wp / (2 * wi)) ** 2 - wp**2 / 4 * (1 / wi + 0.25) + wpp / 2
        assert g[n, t, i] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_g_is_one_on_flat_smiles_and_negative_on_a_spike():
    w = np.full((N_T, N_K), 0.04)
    assert np.all(arb.g_field(w) == 1.0)
    w[4, 8] *= 3.0                   # a spike: the slope changes sign, wpp hugely negative
    assert arb.butterfly_violations(w)[4, 7]
    assert arb.butterfly_violation_rate(w) > 0.0


def test_violation_rates_count_edges_and_nodes():
    w = np.tile(np.linspace(0.01, 0.1, N_T)[:, None], (1, N_K))
    assert arb.calendar_violation_rate(w) == 0.0
    w[5, 3] = w[4, 3] - 1e-4        # one drop from T4 to T5 at one k
    assert arb.calendar_violations(w).shape == (N_T - 1, N_K)
    assert arb.calendar_violation_rate(w) == pytest.approx(1.0 / ((N_T - 1) * N_K))
    report = arb.arbitrage_report(np.stack([w, w]))
    assert set(report) == {"calendar_rate", "g_negative_rate"}
    assert 0.0 <= report["g_negative_rate"] <= 1.0
    assert report["calendar_rate"] == pytest.approx(1.0 / ((N_T - 1) * N_K))


# ---------------------------------------------------------------------------------------------
# Calendar
# ---------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lead=st.sampled_from([(), (3,), (2, 2)]))
def test_calendar_project_leaves_no_calendar_violation(seed, lead):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-0.01, 0.2, lead + (N_T, N_K))
    out = arb.calendar_project(w)
    assert out.shape == w.shape
    assert arb.calendar_violation_rate(out) == 0.0
    assert np.all(out >= W_FLOOR) and np.all(out >= w)
    assert np.array_equal(arb.calendar_project(out), out)


def test_calendar_project_is_a_noop_on_calendar_free_input():
    w = ssvi_w(5, np.random.default_rng(2))
    assert arb.calendar_violation_rate(w) == 0.0
    assert np.array_equal(arb.calendar_project(w), w)


# ---------------------------------------------------------------------------------------------
# Butterfly and full projection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bps", [18.0, 40.0, 70.0])
def test_full_projection_clears_noisy_ssvi(bps):
    rng = np.random.default_rng(int(bps))
    w = with_vol_noise(ssvi_w(60, rng), rng, bps)
    assert arb.butterfly_violation_rate(w) > 0.05 and arb.calendar_violation_rate(w) > 0.02
    assert_arbitrage_free(arb.project(w, "full"))


@pytest.mark.parametrize("make", [rough_w, tiny_w], ids=["rough", "tiny"])
def test_full_projection_clears_pathological_fields(make):
    w = make(40, np.random.default_rng(3))
    assert arb.calendar_violation_rate(w) > 0.2
    assert_arbitrage_free(arb.project(w, "full"))


def test_full_projection_of_one_surface():
    rng = np.random.default_rng(4)
    w = with_vol_noise(ssvi_w(1, rng), rng, 70.0)[0]
    assert arb.butterfly_violation_rate(w) > 0.0
    out = arb.project(w, "full")
    assert out.shape == (N_T, N_K)
    assert_arbitrage_free(out)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), bps=st.floats(0.0, 150.0),
       level=st.floats(0.3, 3.0), roughness=st.floats(0.0, 0.5))
def test_full_projection_clears_random_surfaces(seed, bps, level, roughness):
    rng = np.random.default_rng(seed)
    w = with_vol_noise(ssvi_w(4, rng) * level, rng, bps)
    w *= np.exp(roughness * rng.standard_normal(w.shape))
    assert_arbitrage_free(arb.project(w, "full"))


def test_fallbacks_alone_still_clear_every_slice(monkeypatch):
    """With no SQP steps at all, every failing slice goes through the restarts and, where a
    blend does not pass as it is, to its flat level: the output must still pass."""
    monkeypatch.setattr(arb, "_SQP_STEPS", 0)
    rng = np.random.default_rng(16)
    w = np.concatenate([with_vol_noise(ssvi_w(10, rng), rng, 70.0), rough_w(10, rng)])
    out, info = arb.butterfly_project(w, return_info=True)
    assert info["restarted"] == info["projected"] > 0 and info["flattened"] > 0
    assert arb.butterfly_violation_rate(out) == 0.0
    slope = np.diff(call_prices(out), axis=-1) / np.diff(np.exp(K_GRID))
    assert np.all(np.diff(slope, axis=-1) >= -1e-10)


def test_butterfly_project_leaves_every_slice_clean():
    rng = np.random.default_rng(5)
    w = with_vol_noise(ssvi_w(40, rng), rng, 40.0)
    out, info = arb.butterfly_project(w, return_info=True)
    assert arb.butterfly_violation_rate(out) == 0.0
    assert info["slices"] == 40 * N_T and 0 < info["projected"] <= info["slices"]
    assert info["flattened"] <= info["restarted"] <= info["projected"]
    # price convexity holds slice by slice even though the calendar is untouched
    slope = np.diff(call_prices(out), axis=-1) / np.diff(np.exp(K_GRID))
    assert np.all(np.diff(slope, axis=-1) >= -1e-10)


@pytest.mark.parametrize("mode", ["calendar", "full"])
def test_projections_are_idempotent(mode):
    rng = np.random.default_rng(6)
    w = np.concatenate([with_vol_noise(ssvi_w(20, rng), rng, 40.0), rough_w(5, rng)])
    once = arb.project(w, mode)
    assert np.array_equal(arb.project(once, mode), once)
    b_once = arb.butterfly_project(w)
    assert np.array_equal(arb.butterfly_project(b_once), b_once)


def test_noop_on_arbitrage_free_ssvi():
    rng = np.random.default_rng(7)
    w = ssvi_w(200, rng, eta_rho_cap=2.0, gamma_max=0.5)        # about half at the eta cap
    assert arb.butterfly_violation_rate(w) == 0.0                 # the precondition, checked
    assert arb.calendar_violation_rate(w) == 0.0
    out, info = arb.butterfly_project(w, return_info=True)
    assert info["projected"] == 0
    assert np.array_equal(out, w)
    assert np.array_equal(arb.project(w, "full"), w)


def test_only_violating_slices_and_nodes_move():
    rng = np.random.default_rng(8)
    w = ssvi_w(1, rng, eta_rho_cap=2.0, gamma_max=0.5)[0]
    bumped = w.copy()
    bumped[6, 9] *= 1.15                      # one node up: butterfly arbitrage at k nodes 8-10
    assert np.any(arb.butterfly_violations(bumped)[6])
    out = arb.butterfly_project(bumped)
    others = np.arange(N_T) != 6
    assert np.array_equal(out[others], bumped[others])
    assert np.array_equal(out[6, :5], bumped[6, :5]) and np.array_equal(out[6, -4:], bumped[6, -4:])
    assert out[6, 9] < bumped[6, 9]           # the spike comes down ...
    assert abs(out[6, 9] - w[6, 9]) < abs(bumped[6, 9] - w[6, 9])   # ... towards the truth


def test_full_projection_brings_noisy_ssvi_closer_to_the_truth():
    rng = np.random.default_rng(9)
    truth = ssvi_w(150, rng, eta_rho_cap=2.0, gamma_max=0.5)
    noisy = with_vol_noise(truth, rng, 40.0)
    iv_err = lambda w: np.sqrt(np.mean((np.sqrt(w / T_MESH) - np.sqrt(truth / T_MESH)) ** 2))
    before, after = iv_err(noisy), iv_err(arb.project(noisy, "full"))
    assert after < 0.95 * before


# ---------------------------------------------------------------------------------------------
# project(): modes, shapes, bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
@pytest.mark.parametrize("mode", arb.MODES)
def test_shapes_are_preserved(lead, mode):
    rng = np.random.default_rng(10)
    w = with_vol_noise(ssvi_w(int(np.prod(lead, dtype=int)), rng), rng, 40.0).reshape(lead + (N_T, N_K))
    out = arb.project(w, mode)
    assert out.shape == w.shape and out.dtype == np.float64
    assert arb.butterfly_project(w).shape == w.shape
    assert arb.g_field(w).shape == lead + (N_T, N_K - 2)
    assert arb.butterfly_violations(w).shape == lead + (N_T, N_K - 2)
    if mode == "none":
        assert np.array_equal(out, w)
    if mode == "calendar":
        assert np.array_equal(out, arb.calendar_project(w))


def test_memory_layout_does_not_matter():
    rng = np.random.default_rng(14)
    w = with_vol_noise(ssvi_w(8, rng), rng, 40.0)
    for mode in ("calendar", "full"):
        expected = arb.project(w, mode)
        assert np.array_equal(arb.project(np.asfortranarray(w), mode), expected)
        strided = w.transpose(1, 2, 0).copy().transpose(2, 0, 1)     # same values, odd strides
        assert np.array_equal(arb.project(strided, mode), expected)


def test_batched_projection_equals_surface_by_surface():
    # small and large batches solve the QP with different (equally exact) linear solvers
    rng = np.random.default_rng(11)
    w = with_vol_noise(ssvi_w(60, rng), rng, 70.0)
    batch = arb.project(w, "full")
    for i in range(0, len(w), 6):
        np.testing.assert_allclose(arb.project(w[i], "full"), batch[i], rtol=0.0, atol=1e-12)


def test_mode_none_returns_the_input_untouched():
    w = tiny_w(3, np.random.default_rng(13)) - 2.0 * W_FLOOR      # even below the floor
    out = arb.project(w, "none")
    assert np.array_equal(out, w) and out is not w


def test_unknown_mode_raises_naming_it_and_the_choices():
    with pytest.raises(ValueError, match=r"'butterfly'.*none, calendar, full"):
        arb.project(np.full((N_T, N_K), 0.04), "butterfly")


@pytest.mark.parametrize("bad", [np.full((N_T, N_K - 1), 0.04), np.full((N_K, N_T), 0.04),
                                 np.full(N_K, 0.04)])
def test_wrong_shape_raises(bad):
    with pytest.raises(ValueError, match="shaped"):
        arb.project(bad, "full")


def test_non_finite_input_raises():
    w = np.full((N_T, N_K), 0.04)
    w[3, 3] = np.nan
    for f in (arb.calendar_project, arb.butterfly_project, lambda x: arb.project(x, "full")):
        with pytest.raises(ValueError, match="NaN or inf"):
            f(w)


# ---------------------------------------------------------------------------------------------
# Internals worth pinning
# ---------------------------------------------------------------------------------------------


def test_price_rows_match_textbook_prices_where_those_are_accurate():
    rng = np.random.default_rng(12)
    w = with_vol_noise(ssvi_w(10, rng), rng, 40.0).reshape(-1, N_K)
    rows, _ = arb._price_rows(np.sqrt(w.T))
    c = call_prices(w)
    strike = np.exp(K_GRID)
    h = np.diff(strike)
    dd = 2.0 / (h[:-1] + h[1:]) * np.diff(np.diff(c, axis=-1) / h, axis=-1)
    s = np.sqrt(w[:, 1:-1])
    d2 = -K_GRID[1:-1] / s - 0.5 * s
    flat_density = np.exp(-0.5 * d2**2) / (np.sqrt(2 * np.pi) * strike[1:-1] * s)
    big = flat_density > 1e-3               # where textbook prices still have the digits
    np.testing.assert_allclose(rows[1:-1].T[big], (dd / flat_density)[big], rtol=1e-6, atol=1e-6)
    o = np.where(K_GRID < 0, c - (1.0 - strike), c)
    np.testing.assert_allclose(rows[0], np.log(o[:, 1] / o[:, 0]) - DK, rtol=1e-9)
    np.testing.assert_allclose(rows[-1], np.log(o[:, -2] / o[:, -1]), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pivots=st.sampled_from([arb._PIVOTS, 1]))
def test_least_change_solves_its_qp(seed, pivots):
    """KKT: feasible, multipliers >= 0 with complementarity, and y = A' mu (least norm); also
    when the pivoting hands (nearly) every slice to the least-distance fallback."""
    rng = np.random.default_rng(seed)
    n = 64
    a = rng.standard_normal((N_K, 3, n))
    a[0, 0] = a[-1, 2] = 0.0
    a /= np.sqrt(np.sum(a * a, axis=1, keepdims=True))
    b = rng.standard_normal((N_K, n))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(arb, "_PIVOTS", pivots)
        y = arb._least_change(a, b)
    slack = arb._stencil_apply(a, y) - b
    tol = 1e-9 * (1.0 + np.max(np.abs(y), axis=0))     # random rows can be ill-conditioned
    assert np.all(slack >= -tol)
    # recover mu from y = A' mu on the active rows and check its sign
    for j in range(n):
        dense = np.zeros((N_K, N_K))
        for i in range(N_K):
            for t in range(3):
                if 0 <= i - 1 + t < N_K:
                    dense[i, i - 1 + t] = a[i, t, j]
        active = slack[:, j] < tol[j]
        mu, *_ = np.linalg.lstsq(dense[active].T, y[:, j], rcond=None)
        assert np.allclose(dense[active].T @ mu, y[:, j], atol=tol[j])
        assert np.all(mu >= -tol[j])


def test_pivoting_and_least_distance_agree():
    """The batched pivoting and the per-slice NNLS fallback solve the same QP."""
    rng = np.random.default_rng(15)
    a = rng.standard_normal((N_K, 3, 40))
    a[0, 0] = a[-1, 2] = 0.0
    a /= np.sqrt(np.sum(a * a, axis=1, keepdims=True))
    b = 0.1 * rng.standard_normal((N_K, 40))
    np.testing.assert_allclose(arb._least_change(a, b), arb._least_distance(a, b), atol=1e-9)
