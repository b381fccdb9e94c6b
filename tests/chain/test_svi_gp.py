"""svi_gp on small synthetic chains: reproduces its quotes, arbitrage-free, calibrated intervals."""
import numpy as np
import pytest

from core.chain.methods import get_chain_method
from core.chain.types import ChainQuotes
from core.engine.dense_check import dense_check
from core.evaluation.real import random_masks


@pytest.fixture(scope="module")
def full_fit(small_chain):
    return get_chain_method("svi_gp").fit(small_chain)


def test_reproduces_its_quotes_within_the_spread(small_chain, small_frame, full_fit):
    pred = full_fit.iv(small_chain.T, small_chain.k)
    inside = (pred >= small_chain.iv_bid) & (pred <= small_chain.iv_ask)
    assert inside.mean() >= 0.85
    # and it is closer to the truth than the quotes' own noise (it smooths, it does not chase)
    truth = small_frame["iv_true"].to_numpy()
    assert np.sqrt(np.mean((pred - truth) ** 2)) < np.sqrt(np.mean((small_chain.iv - truth) ** 2))


def test_dense_check_has_no_violation(small_chain):
    hide = random_masks(small_chain, 1, seed=1)[0]
    train, test = small_chain.subset(~hide), small_chain.subset(hide)
    surface = get_chain_method("svi_gp").fit(train, ask=(test.T, test.k))
    report = dense_check(surface)
    assert report.ok, report.to_dict()
    assert np.isfinite(surface.iv(test.T, test.k)).all()


def test_intervals_cover_held_out_quotes(small_chain, full_fit):
    z = []
    for hide in random_masks(small_chain, 3, seed=7):
        train, test = small_chain.subset(~hide), small_chain.subset(hide)
        surface = get_chain_method("svi_gp").fit(train, warm=full_fit)
        sd = surface.sd(test.T, test.k)
        assert np.isfinite(sd).all() and (sd > 0).all()
        z.append((surface.iv(test.T, test.k) - test.iv) / sd)
    z = np.abs(np.concatenate(z))
    assert 0.65 <= np.mean(z <= 1.2816) <= 0.95
    assert 0.85 <= np.mean(z <= 1.96) <= 1.0


def test_bad_input_is_a_one_line_value_error(small_chain):
    empty = small_chain.subset(np.zeros(len(small_chain), bool))
    with pytest.raises(ValueError) as err:
        get_chain_method("svi_gp").fit(empty)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="iv"):
        ChainQuotes(T=[0.1], k=[0.0], iv=[np.nan], iv_bid=[np.nan], iv_ask=[np.nan], forward=[1.0],
                    discount=[1.0], weight=[1.0])
