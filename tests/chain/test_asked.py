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


def test_many_asked_expiries_get_at_most_max_asked_slices_evenly_spaced():
    """5,000 query rows at distinct T once meant 5,000 inserted slices (112 s, a 230 MB grid)."""
    from types import SimpleNamespace

    from core.chain.asked import MAX_ASKED, asked_expiry_smiles

    shorter, longer = _neighbours(0.5)
    surface = SimpleNamespace(expiries=np.array([0.3, 0.6]), theta=np.array([float(s.w(np.zeros(1))[0]) for s in
                                                                              (shorter, longer)]),
                              slices=[shorter, longer], k_bounds=np.array([[-0.4, 0.3], [-0.4, 0.3]]),
                              w=lambda T, k: 0.5 * (shorter.w(np.atleast_1d(k)) + longer.w(np.atleast_1d(k)))[0])
    T_ask = np.linspace(0.31, 0.59, 3 * MAX_ASKED + 1)
    out = asked_expiry_smiles(surface, (T_ask, np.zeros(T_ask.size)))
    T_out = np.array([x[0] for x in out])
    assert T_out.size == MAX_ASKED and abs(T_out[0] - T_ask[0]) < 1e-9 and abs(T_out[-1] - T_ask[-1]) < 1e-9
    assert np.ptp(np.diff(T_out)) < 2.5 * (T_ask[1] - T_ask[0])        # evenly spaced among the asked
    few = asked_expiry_smiles(surface, (T_ask[:5], np.zeros(5)))
    np.testing.assert_allclose([x[0] for x in few], T_ask[:5], rtol=0, atol=1e-9)   # T rounded to 1e-9
