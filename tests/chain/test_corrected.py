"""The GP correction survives the re-check on a dense chain (expiries days apart, a misfit SVI).

Before the shares were made continuous and local and the calendar cascade was removed
(core.chain.corrected), this chain kept the correction on 6 of its 11 slices (the five longest
went bare after one crossing) and 81 % of its quotes inside their bid-ask.
"""
import numpy as np
import pytest

from core.chain.corrected import LocalShare
from core.chain.methods import get_chain_method
from core.engine.dense_check import dense_check
from core.synth.chains import ChainSpec, make_chain, surface_function
from tests.chain.conftest import chain_from_frame

# weeklies plus extra expiries a week apart, wide put range; a coarse ladder keeps the fit fast
CLOSE = ChainSpec(weeklies=4, monthlies=4, horizon_years=0.5, strike_step_factor=3.0, put_sd=4.0,
                  extra_expiry_days=(33, 40, 47, 61, 68, 75))


@pytest.fixture(scope="module")
def close_fit():
    df = make_chain(surface_function("sabr_event", 5), CLOSE, seed=5)
    chain = chain_from_frame(df[df["T"] >= 0.05])
    return chain, get_chain_method("svi_gp").fit(chain)


def test_correction_survives_on_close_expiries(close_fit):
    chain, surface = close_fit
    factors = np.array([getattr(sl, "factor", 0.0) for sl in surface.slices])
    assert factors.size == 11 and (factors > 0).sum() >= 9, factors
    pred = surface.iv(chain.T, chain.k)
    inside = (pred >= chain.iv_bid) & (pred <= chain.iv_ask)
    assert inside.mean() >= 0.88
    report = dense_check(surface)
    assert report.ok, report.to_dict()


def test_local_share_is_a_smooth_partition_of_unity():
    share = LocalShare(knots=np.arange(-1.0, 1.01, 0.1), s=np.ones(21), width=0.1)
    k = np.linspace(-2.0, 2.0, 401)
    assert np.allclose(share(k), 1.0)
    cut = LocalShare(knots=share.knots, s=np.where(np.abs(share.knots) < 0.05, 0.0, 1.0), width=0.1)
    v = cut(k)
    assert v.min() >= 0.0 and v.max() <= 1.0 + 1e-12
    assert v[np.abs(k) > 0.5].min() > 0.99 and v[np.argmin(np.abs(k))] < 0.7


def test_a_tiny_correction_passes_where_the_base_is_near_the_butterfly_edge():
    """Where the base slice's own g is below G_SAFE (an SVI wing near Lee's bound), a correction of
    1e-9 vol that lowers g a little passes the re-check whole (held to the base's whole margin it
    failed, and the slice lost its correction everywhere: SPY), while one that takes g to the
    edge is still cut."""
    from core.chain.corrected import G_SAFE, _H_K, _SliceCheck, _g_and_dec, _keep
    from core.chain.svi import svi_w

    p = np.array([0.04, 0.97564103, -0.35, 0.0, 0.4])

    class Base:
        def w(self, k):
            return svi_w(p, np.asarray(k, np.float64))

    T, k = 1.0, np.linspace(-1.5, 1.5, 2001)
    check = _SliceCheck(Base(), T, k, None, None)
    ws = [Base().w(x) for x in (k, k + _H_K, k - _H_K)]
    g0, _ = _g_and_dec(k, *ws)
    near = (g0 > 0) & (g0 < G_SAFE)
    assert near.sum() > 5 and g0.min() > 0
    k0 = float(k[near][np.argmin(g0[near])])
    for size, whole in ((-1e-9, True), (1e-9, True), (-3e-2, False)):
        fn = lambda x: size * np.exp(-0.5 * ((x - k0) / 0.1) ** 2)   # noqa: E731
        res = [fn(x) for x in (k, k + _H_K, k - _H_K)]
        w = [(np.sqrt(wi / T) + r) ** 2 * T for wi, r in zip(ws, res)]
        g, _ = _g_and_dec(k, *w)
        if whole:
            assert (g < g0 - 1e-12).any()           # it does lower g below the base's own somewhere
            assert check.best_share(res) == 1.0
        else:
            assert check.best_share(res) < 1.0
    # the margin kept: G_SAFE where the base has it, half the base's own below, never above the base's
    np.testing.assert_allclose(_keep(np.array([2e-3, 1e-3, 4e-4, 0.0, -1e-13]), G_SAFE) + 1e-12,
                               [1e-3, 1e-3, 2e-4, 0.0, -1e-13], atol=1e-16)
