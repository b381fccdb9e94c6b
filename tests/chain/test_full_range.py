"""Full range: a chain from one day to five years, puts out to k = -1.5, repaired over all of it."""
import numpy as np
import pytest

from core.chain.methods import get_chain_method
from core.chain.types import from_quoteset
from core.engine.dense_check import dense_check
from core.quotes.read import normalise_quotes
from core.synth.chains import ChainSpec, make_chain, surface_function

SPEC = ChainSpec(weeklies=1, monthlies=2, horizon_years=5.1, extra_expiry_days=(1, 1826), k_min=-1.5,
                 strike_step_factor=6.0)


@pytest.fixture(scope="module")
def full_range():
    df = make_chain(surface_function("ssvi", 7), SPEC, seed=2)
    return df, from_quoteset(normalise_quotes(df[["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]]))


def test_the_chain_spans_the_range(full_range):
    df, chain = full_range
    assert df["T"].min() <= 1 / 365 + 1e-9 and df["T"].max() >= 5.0
    assert df["k"].min() <= -1.45
    assert len(chain) == len(df)                      # nothing dropped or set aside on the way in


def test_repaired_over_its_whole_range(full_range):
    df, chain = full_range
    surface = get_chain_method("svi_fit").fit(chain)
    assert surface.expiries[0] == pytest.approx(chain.T.min()) and surface.expiries[-1] == pytest.approx(chain.T.max())
    assert not surface.extrapolated(chain.T, chain.k).any()
    report = dense_check(surface)
    assert report.ok, report.to_dict()
    pred = surface.iv(chain.T, chain.k)
    assert np.isfinite(pred).all()
    rel = np.abs(pred - df["iv_true"].to_numpy()) / df["iv_true"].to_numpy()
    assert np.median(rel) < 0.02


def test_the_chain_workflow_labels_nothing_outside(full_range):
    """Through ``repair_chain`` (the CLI's --chain): every quote beyond the 13 x 17 grid's box is
    used, its status says "used" in quotes.csv and the summary counts it as used; "outside the
    grid" appears nowhere (it did: 'N used, M outside the grid' for quotes the repair used)."""
    from core.chain.workflow import repair_chain

    df, chain = full_range
    cols = ["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]
    result = repair_chain(df[cols], method="svi_fit", stale=False)
    status = result.quote_table["status"]
    assert (status == "used").sum() == len(chain) and not (status == "outside").any()
    assert result.quotes.report.n_used == len(chain) and result.quotes.report.n_outside == 0
    assert not any("outside the grid" in line for line in result.summary_lines())


MERTON_SPEC = ChainSpec(noise_bp=5.0, half_spread_noise=3.0, extra_expiry_days=(1, 2, 3), weeklies=3, monthlies=10,
                        horizon_years=3.0)


def test_one_day_jump_smiles_keep_their_own_svi_slice():
    """A Merton chain (a family no method was tuned on) with 1-, 2- and 3-day expiries: a 1-day smile
    is flat to 0.01 in k and then steep, narrower than the chain-wide penalty set's spacing (0.017 on
    |k| <= 1). Fitted on that set alone, its slice bent g below 0 between the points, failed the
    re-check twice and fell back to a price mix of the 2-day slice, 3 vol points off its own quotes.
    Each slice's constraints now also hold on its own scale (core.chain.build.with_local)."""
    from core.chain.surface import SVISlice
    from core.evaluation.real import random_masks

    df = make_chain(surface_function("merton_jump", 11), MERTON_SPEC, seed=11)
    chain = from_quoteset(normalise_quotes(df[["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]]))
    train = chain.subset(~random_masks(chain, 1, 0)[0])
    surface = get_chain_method("svi_fit").fit(train)
    assert all(isinstance(s, SVISlice) for s in surface.slices[:3])
    short = df["T"].to_numpy() < 2.5 / 365
    err = surface.iv(df["T"].to_numpy()[short], df["k"].to_numpy()[short]) - df["iv_true"].to_numpy()[short]
    assert np.sqrt(np.mean(err**2)) < 0.006           # was 0.04 with the mix fallback
    assert dense_check(surface).ok


def test_local_points_only_where_the_chain_wide_set_is_sparse():
    from core.chain.build import with_local

    k_set = np.linspace(-1.0, 1.0, 121)
    narrow = with_local(k_set, -0.03, 0.02, 4e-5, 61)          # a 1-day smile: ATM move 0.006
    inside = narrow[(narrow >= -0.03 - 0.019) & (narrow <= 0.02 + 0.019)]
    assert inside.size >= 61 and np.all(np.diff(narrow) > 0) and narrow[0] == -1.0 and narrow[-1] == 1.0
    wide = with_local(k_set, -0.8, 0.5, 0.09, 61)              # a 2-year smile: already dense enough
    np.testing.assert_array_equal(wide, k_set)


def test_grid_methods_follow_a_backwardated_chain():
    """Vol falling from 90 % at the front to 25 %: through the chain <-> grid map (ln T compressed,
    vols carried unchanged) the grid saw calendar arbitrage the chain does not have, and a calendar
    projection on the grid lifted the long end by up to 20 vol points. The projection now acts on the
    chain's own total variance (core.chain.mapping.grid_values); the chain surface keeps the result
    arbitrage-free."""
    from core.synth.mixtures import merton_w

    q = dict(vol_short=0.9, vol_long=0.25, kappa=3.0, lam=1.0, jump_mean=-0.15, jump_sd=0.1)
    spec = ChainSpec(noise_bp=5.0, half_spread_noise=3.0, extra_expiry_days=(1, 2), weeklies=1, monthlies=5,
                     horizon_years=2.5, atm_vol=0.45, strike_step_factor=4.0)
    df = make_chain(lambda T, k: merton_w(q, T, k), spec, seed=1)
    chain = from_quoteset(normalise_quotes(df[["valuation_date", "expiry", "strike", "forward", "iv", "bid", "ask"]]))
    surface = get_chain_method("interp").fit(chain)
    T, k = df["T"].to_numpy(), df["k"].to_numpy()
    err = surface.iv(T, k) - df["iv_true"].to_numpy()
    long_end = T > 1.0
    assert np.sqrt(np.mean(err[long_end] ** 2)) < 0.01          # was 0.19 at two years
    assert dense_check(surface).ok
