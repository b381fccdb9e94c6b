"""The arbitrage-free chain surface: fits its quotes, passes the dense check, marks extrapolation."""
import numpy as np
import pytest

from core.chain.build import build_surface
from core.chain.surface import SliceSurface
from core.chain.types import ChainSurface
from core.engine.dense_check import dense_check


@pytest.fixture(scope="module")
def surface(small_chain) -> SliceSurface:
    return build_surface(small_chain.T, small_chain.k, small_chain.iv)


def test_is_a_chain_surface_and_passes_the_dense_check(surface):
    assert isinstance(surface, ChainSurface)
    report = dense_check(surface)
    assert report.ok, report.to_dict()


def test_fits_the_quotes_within_their_noise(surface, small_chain, small_frame):
    err_truth = surface.iv(small_chain.T, small_chain.k) - small_frame["iv_true"].to_numpy()
    noise = small_frame["iv"].to_numpy() - small_frame["iv_true"].to_numpy()
    # a smooth fit through noisy quotes lands nearer the truth than the quotes are, or close to it
    assert np.sqrt(np.mean(err_truth**2)) < 1.5 * np.sqrt(np.mean(noise**2)) + 1e-3


def test_short_end_stays_at_its_quotes(surface, small_chain):
    T1 = small_chain.expiries[0]
    sel = small_chain.slice(0)
    order = np.argsort(small_chain.k[sel])
    atm_quoted = np.interp(0.0, small_chain.k[sel][order], small_chain.iv[sel][order])
    assert abs(float(surface.iv(T1, 0.0)) - atm_quoted) < 0.005


def test_calendar_arbitrage_in_the_quotes_is_repaired_near_the_quotes():
    k = np.linspace(-0.3, 0.3, 13)
    T = np.repeat([0.1, 0.2, 0.4], k.size)
    kk = np.tile(k, 3)
    iv = 0.2 + 0.1 * kk**2 - 0.05 * kk
    iv[T == 0.2] *= 0.65          # the middle expiry's w falls below the first: calendar arbitrage
    s = build_surface(T, kk, iv)
    assert dense_check(s).ok
    w = s.w(T, kk)
    assert np.all(np.diff(w.reshape(3, -1), axis=0) >= 0)
    # the short expiry is not pulled far from its own quotes
    assert np.max(np.abs(s.iv(T[:13], kk[:13]) - iv[:13])) < 0.03


def test_between_and_outside_the_expiries(surface):
    E = surface.expiries
    k = np.linspace(*surface.k_domain, 51)
    # before the first expiry the smile is the first one's, in vol
    np.testing.assert_allclose(surface.iv(E[0] / 2, k), surface.iv(E[0], k), rtol=1e-7)
    # after the last, total variance keeps growing
    assert np.all(surface.w(2 * E[-1], k) >= surface.w(E[-1], k))
    # at an expiry, w is the slice's own
    np.testing.assert_allclose(surface.w(E[1], k), surface.slices[1].w(k), rtol=1e-12)
    mid = 0.5 * (E[1] + E[2])
    w_mid = surface.w(mid, k)
    assert np.all(np.isfinite(w_mid)) and np.all(w_mid >= surface.w(E[1], k) - 1e-12)
    call = surface.call(mid, k)
    assert np.all((call >= np.maximum(1 - np.exp(k), 0) - 1e-15) & (call <= 1))


def test_extrapolated_marks(surface):
    E, kb = surface.expiries, surface.k_bounds
    mid_k = 0.5 * (kb[0, 0] + kb[0, 1])
    assert not surface.extrapolated(E[0], mid_k)
    assert surface.extrapolated(E[0] / 2, mid_k)
    assert surface.extrapolated(E[-1] * 1.5, 0.0)
    assert surface.extrapolated(E[0], kb[0, 0] - 0.01)
    assert surface.extrapolated(E[0], kb[0, 1] + 0.01)
    flags = surface.extrapolated(E[:, None], np.array([kb[:, 0], kb[:, 1]]).T)
    assert not flags.any()


def test_params_and_dense_table(surface):
    p = surface.params()
    assert len(p) == surface.expiries.size
    assert {"T", "kind", "a", "b", "rho", "m", "sigma", "theta", "k_lo", "k_hi"} <= set(p.columns)
    assert (np.diff(p["theta"]) > 0).all()
    t = surface.table(n_k=21)
    assert len(t) == 21 * (2 * surface.expiries.size - 1)
    assert {"T", "k", "w", "iv", "call", "sd", "extrapolated"} <= set(t.columns)
    assert np.isfinite(t["iv"]).all()


def test_rejects_no_usable_nodes():
    with pytest.raises(ValueError, match="no finite node"):
        build_surface([0.1, 0.2], [0.0, 0.0], [np.nan, -1.0])
