import numpy as np
import pytest

from core.engine.grid import T_MESH
from core.engine import ssvi
from core.synth.families import (
    ESSVI_BROAD_RANGES,
    FAMILIES,
    SABR_EVENT_RANGES,
    SHIFTED_SSVI_RANGES,
    SSVI_RANGES,
    essvi_broad_total_variance,
    generate,
    sabr_event_total_variance,
    shifted_ssvi_total_variance,
    ssvi_total_variance,
)

N = 3000


@pytest.mark.parametrize("generator, ranges", [(ssvi_total_variance, SSVI_RANGES),
                                               (shifted_ssvi_total_variance, SHIFTED_SSVI_RANGES),
                                               (sabr_event_total_variance, SABR_EVENT_RANGES),
                                               (essvi_broad_total_variance, ESSVI_BROAD_RANGES)])
def test_parameters_fill_their_boxes(generator, ranges):
    w, params = generator(N, seed=11, return_params=True)
    assert w.shape == (N, 13, 17)
    for name, (low, high) in ranges.items():
        values = params[name]
        assert values.min() >= low and values.max() <= high, name
        # the draw spans the box, not a corner of it
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low), name


@pytest.mark.parametrize("family", FAMILIES)
def test_surfaces_are_finite_positive_and_seeded(family):
    w = generate(family, 200, seed=5)
    assert np.isfinite(w).all() and (w > 0).all()
    np.testing.assert_array_equal(w, generate(family, 200, seed=5))
    assert not np.allclose(w, generate(family, 200, seed=6))


@pytest.mark.parametrize("family", ["ssvi", "sabr_event"])
def test_calendar_monotone_targets(family):
    w = generate(family, 500, seed=2)
    assert (np.diff(w, axis=1) >= -1e-12).all()


def test_ssvi_matches_closed_form_at_the_money():
    w, p = ssvi_total_variance(50, seed=3, return_params=True)
    t_scaled = T_MESH[:, 0] / 2.0
    theta = p["theta0"][:, None] + p["theta_slope"][:, None] * t_scaled + p["theta_curve"][:, None] * t_scaled**2
    theta = np.maximum.accumulate(np.maximum(theta, 0.004), axis=1)
    np.testing.assert_allclose(w[:, :, 8], theta, rtol=1e-12)   # w(k=0, T) = theta(T)


def test_event_and_bump_frequencies():
    _, p = shifted_ssvi_total_variance(N, seed=4, return_params=True)
    assert abs(p["has_bump"].mean() - 0.45) < 0.04
    assert set(np.unique(p["bump_T_index"][p["has_bump"]])) <= set(range(2, 11))
    w, p = sabr_event_total_variance(N, seed=4, return_params=True)
    assert abs(p["has_event"].mean() - 0.75) < 0.04
    iv = np.sqrt(w / T_MESH)
    assert iv.min() >= 0.04 - 1e-12 and iv.max() <= 1.20 + 1e-12


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="unknown surface family 'heston2'"):
        generate("heston2", 3, 0)


def test_broad_essvi_slices_are_butterfly_free_and_calendar_ordered():
    """The broad prior component's surfaces: every slice within Gatheral and Jacquier's SSVI
    no-butterfly bounds, so Durrleman's g >= 0 on a fine k set far beyond the grid; w non-decreasing
    in T on the grid."""
    w, p = essvi_broad_total_variance(2000, seed=21, return_params=True)
    theta, rho, phi = p["theta"], p["rho"], p["phi"]
    assert (theta * phi * (1 + np.abs(rho)) <= 4 + 1e-9).all() and (theta * phi**2 * (1 + np.abs(rho)) <= 4 + 1e-9).all()
    # the surfaces are those slices, made calendar-monotone by the running max in T (a max of
    # butterfly-free call-price curves is still convex in strike) and floored
    from core.engine.grid import K_GRID
    slices = ssvi.ssvi_total_variance(theta[..., None], rho[..., None], phi[..., None], K_GRID)
    np.testing.assert_allclose(w, np.maximum(np.maximum.accumulate(slices, axis=1), 1e-4), rtol=1e-12)
    assert (np.diff(w, axis=1) >= 0).all()
    # rho moves linearly in theta between its two ends, within the clip
    lo, hi = -0.95, 0.5
    assert rho.min() >= lo - 1e-12 and rho.max() <= hi + 1e-12
    k, h = np.linspace(-2.0, 2.0, 161), 1e-4
    f = lambda x: ssvi.ssvi_total_variance(theta[..., None], rho[..., None], phi[..., None], x)   # noqa: E731
    v, vp, vm = f(k), f(k + h), f(k - h)
    w1, w2 = (vp - vm) / (2 * h), (vp - 2 * v + vm) / h**2
    g = (1 - k * w1 / (2 * v)) ** 2 - w1**2 / 4 * (1 / v + 0.25) + w2 / 2
    assert g.min() > -1e-6
    # and the draws are broad: positive and negative skews, steep and flat smiles
    assert rho.min() < -0.9 and rho.max() > 0.3


def test_broad_essvi_box_contains_the_shifted_ssvi_one():
    """The broad component is meant to reach beyond the SSVI test family in every shape parameter."""
    lo_rho = ESSVI_BROAD_RANGES["rho_short"][0]
    assert lo_rho <= SHIFTED_SSVI_RANGES["rho"][0] and ESSVI_BROAD_RANGES["rho_short"][1] >= SHIFTED_SSVI_RANGES["rho"][1]
    for name in ("eta", "gamma"):
        assert ESSVI_BROAD_RANGES[name][0] < SHIFTED_SSVI_RANGES[name][0]
        assert ESSVI_BROAD_RANGES[name][1] > SHIFTED_SSVI_RANGES[name][1]
