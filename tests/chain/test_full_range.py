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
