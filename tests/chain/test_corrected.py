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
