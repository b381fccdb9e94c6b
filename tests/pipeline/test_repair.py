"""core.repair: the public contract, for every method, and its input checks."""
import numpy as np
import pytest

import core
from core.synth.families import generate
from core.synth.missingness import make_masks, observe


def _quotes(n=6, regime="adversarial", seed=0, family="sabr_event"):
    w = generate(family, n, seed)
    return observe(w, make_masks(regime, n, seed + 1), seed + 2)


@pytest.mark.parametrize("method", core.METHODS)
@pytest.mark.parametrize("regime", ["regular", "adversarial"])
def test_every_method_returns_finite_positive_calendar_free(method, regime):
    iv_obs = _quotes(regime=regime)
    res = core.repair(iv_obs, method)
    assert res.iv.shape == iv_obs.shape
    assert np.isfinite(res.iv).all() and (res.iv > 0).all()
    assert (np.diff(res.iv**2 * core.T_GRID[:, None], axis=-2) >= -1e-12).all()
    if res.sd is not None:
        assert res.sd.shape == iv_obs.shape and np.isfinite(res.sd).all() and (res.sd > 0).all()


@pytest.mark.parametrize("method", core.METHODS)
def test_single_surface_matches_batch(method):
    iv_obs = _quotes(n=3, regime="regular")
    batch = core.repair(iv_obs, method).iv
    single = core.repair(iv_obs[1], method).iv
    assert single.shape == (13, 17)
    np.testing.assert_allclose(single, batch[1], rtol=1e-5)


def test_random_sparse_masks_with_few_quotes():
    rng = np.random.default_rng(4)
    iv = np.full((20, 13, 17), np.nan)
    for i in range(20):
        cells = rng.choice(221, size=rng.integers(4, 12), replace=False)
        iv[i].flat[cells] = rng.uniform(0.1, 0.6, size=cells.size)
    for method in core.METHODS:
        out = core.repair(iv, method).iv
        assert np.isfinite(out).all() and (out > 0).all(), method
        assert (np.diff(out**2 * core.T_GRID[:, None], axis=-2) >= -1e-12).all(), method


def test_interp_reproduces_quotes_and_linear_surfaces():
    rng = np.random.default_rng(1)
    w = 0.01 + 0.02 * core.T_GRID[:, None] + 0.005 * core.K_GRID[None, :] ** 2 * 0  # linear in T
    iv_true = np.sqrt(w / core.T_GRID[:, None]) * np.ones((13, 17))
    mask = rng.random((13, 17)) < 0.5
    mask[[0, -1]][:, [0, -1]] = True
    iv_obs = np.where(mask, iv_true, np.nan)
    res = core.repair(iv_obs, "interp")
    np.testing.assert_allclose(res.iv[mask], iv_true[mask], rtol=1e-9)


def test_svi_recovers_a_library_smile():
    from core.engine.baselines import SVIGrid, svi_shapes
    shapes, params = svi_shapes(SVIGrid())
    w_slice = 0.01 + 0.05 * shapes[100]
    w = np.tile(w_slice, (13, 1))
    iv = np.sqrt(w / core.T_GRID[:, None])
    iv[:, ::3] = np.nan
    res = core.repair(iv, "svi", arbitrage="none")
    np.testing.assert_allclose(res.iv, np.sqrt(w / core.T_GRID[:, None]), rtol=1e-8)


GOOD = _quotes(n=1)[0]


@pytest.mark.parametrize("bad, message", [
    (np.ones((13, 16)) * 0.2, r"shape \(13, 17\) or \(n, 13, 17\); got \(13, 16\)"),
    (np.ones((2, 3, 13, 17)) * 0.2, r"got \(2, 3, 13, 17\)"),
    (np.where(np.arange(221).reshape(13, 17) == 5, np.inf, GOOD), "infinite"),
    (np.where(np.arange(221).reshape(13, 17) == 5, -0.2, 0.2), r"vol\(s\) <= 0.*first -0.2 at T=0.08, k=-0.169"),
    (np.where(np.arange(221).reshape(13, 17) == 5, 0.0, 0.2), r"<= 0"),
    (np.where(np.arange(221).reshape(13, 17) == 5, 20.0, 0.2), r"above 5"),
    (np.where(np.arange(221).reshape(13, 17) < 3, 0.2, np.nan), r"has 3 quote\(s\); at least 4"),
    (np.full((13, 17), np.nan), r"has 0 quote\(s\)"),
    ([["a"] * 17] * 13, "numeric"),
    (np.zeros((0, 13, 17)), "no surfaces"),
])
def test_bad_input_raises_a_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        core.repair(bad, "interp")


def test_batch_error_names_the_surface():
    iv = np.stack([GOOD, np.where(np.arange(221).reshape(13, 17) < 2, 0.2, np.nan)])
    with pytest.raises(ValueError, match="surface 1 of iv_obs has 2 quote"):
        core.repair(iv, "svi")


def test_unknown_method_and_mode():
    with pytest.raises(ValueError, match="unknown method 'krig'; choose one of interp, svi, .*cnn"):
        core.repair(GOOD, "krig")
    with pytest.raises(ValueError, match="unknown arbitrage mode 'weird'"):
        core.repair(GOOD, "interp", arbitrage="weird")


@pytest.mark.parametrize("line", ["row", "column", "diagonal"])
def test_quotes_on_one_line_are_repaired_not_crashed(line):
    iv = np.full((13, 17), np.nan)
    if line == "row":
        iv[4, 2:12] = np.linspace(0.3, 0.2, 10)
    elif line == "column":
        iv[1:9, 8] = np.linspace(0.25, 0.2, 8)
    else:
        for j in range(6):
            iv[j, j] = 0.2 + 0.01 * j
    for method in core.METHODS:
        out = core.repair(iv, method).iv
        assert np.isfinite(out).all() and (out > 0).all(), method
    if line == "row":   # along the quoted maturity, interpolation reproduces the quotes
        np.testing.assert_allclose(core.repair(iv, "interp", arbitrage="none").iv[4, 2:12], iv[4, 2:12], rtol=1e-9)
