"""core.chain.asked: the base of an asked slice between two quoted neighbours."""
import numpy as np

from core.chain.asked import BetweenSlice, _base
from core.chain.build import dense_k
from core.chain.surface import SVISlice

P = (0.02, 0.1, -0.4, 0.0, 0.2)      # raw SVI (a, b, rho, m, sigma) at T = 0.5


def _neighbours(gap: float):
    return SVISlice(P), SVISlice((P[0] * (1.0 + gap),) + P[1:])


def test_an_svi_through_the_nodes_is_the_base_where_it_fits_between():
    shorter, longer = _neighbours(0.5)
    k = np.linspace(-0.4, 0.3, 41)
    iv = np.sqrt(0.5 * (shorter.w(k) + longer.w(k)) / 0.4)
    base = _base(0.4, k, iv, float(iv[np.argmin(np.abs(k))] ** 2 * 0.4), shorter, longer,
                 dense_k(-0.6, 0.5, 121), dense_k(-0.6, 0.5, 2001))
    assert isinstance(base, SVISlice)
    assert np.abs(np.sqrt(base.w(k) / 0.4) - iv).max() < 1e-3


def test_neighbours_too_close_for_an_svi_give_their_price_mix_ordered_between_them():
    """With the neighbours 1e-5 apart in w, no SVI fits between them at the fit's 1e-3 margin:
    the base is their price mix at the asked ATM level, between them at every k."""
    shorter, longer = _neighbours(1e-5)
    k = np.linspace(-0.4, 0.3, 41)
    iv = np.sqrt(shorter.w(k) / 0.4)
    k_check = dense_k(-0.6, 0.5, 2001)
    base = _base(0.4, k, iv, float(shorter.w(np.zeros(1))[0]) * (1 + 5e-6), shorter, longer,
                 dense_k(-0.6, 0.5, 121), k_check)
    assert isinstance(base, BetweenSlice) and 0.0 < base.weight < 1.0
    # the mix is at the asked ATM level (a weight on the wrong neighbour would miss it)
    theta = float(shorter.w(np.zeros(1))[0]) * (1 + 5e-6)
    assert abs(float(base.w(np.zeros(1))[0]) / theta - 1.0) < 1e-9
    w = base.w(k_check)
    assert (w >= shorter.w(k_check) * (1 - 1e-12)).all() and (w <= longer.w(k_check) * (1 + 1e-12)).all()
    assert base.row()["kind"] == "mix-between" and base.row()["beta"] == 1.0 - base.weight
