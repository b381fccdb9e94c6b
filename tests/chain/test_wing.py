"""The wing blend (core.chain.wing): each chain chooses, on its own outer quotes, how its smiles
continue beyond the quotes, and svi_gp follows that choice arbitrage-free."""
import dataclasses

import numpy as np

from core.chain.gp_residual import GPConfig
from core.chain.methods import get_chain_method
from core.chain.svi import svi_w
from core.chain.types import ChainQuotes
from core.chain.wing import HOLD_U, MIN_TESTED, continuation, line_iv, outer_mask, rate, wing_fit
from core.engine.dense_check import dense_check
from core.evaluation.real import wing_mask

EXPIRIES = (0.1, 0.25, 0.5, 1.0)


def _chain(iv_fn, n_k: int = 25) -> ChainQuotes:
    T, k = [], []
    for t in EXPIRIES:
        z = np.linspace(-4.0, 3.0, n_k)
        T.append(np.full(n_k, t))
        k.append(z * 0.2 * np.sqrt(t))
    T, k = np.concatenate(T), np.concatenate(k)
    iv = iv_fn(T, k)
    n = T.size
    return ChainQuotes(T=T, k=k, iv=iv, iv_bid=iv - 5e-4, iv_ask=iv + 5e-4, forward=np.full(n, 100.0),
                       discount=np.ones(n), weight=np.ones(n))


def _straight_wings(T, k):
    """A smile whose put wing is a straight line in vol (as index puts often are), in z = k / sqrt(T);
    its call wing falls gently (slope -0.01 per z), which an SVI wing follows as well."""
    z = k / np.sqrt(T)
    return 0.2 + 0.05 * np.sqrt(z * z + 0.01) - 0.06 * z


def _svi_smiles(T, k):
    """Raw-SVI smiles in z = k / sqrt(T) (w = T f(z): raw SVI in k at each T): their own wings are SVI's."""
    p = np.array([0.03, 0.04, -0.5, 0.1, 0.5])
    return np.sqrt(svi_w(p, k / np.sqrt(T)))


def test_the_blend_picks_the_line_where_the_wings_are_straight_in_vol():
    a_put, _ = wing_fit(_chain(_straight_wings)).alpha
    assert a_put >= 0.7, a_put


def test_the_blend_keeps_the_svi_wing_where_the_smiles_are_svi():
    a_put, a_call = wing_fit(_chain(_svi_smiles)).alpha
    assert a_put <= 0.3 and a_call <= 0.3, (a_put, a_call)


def test_too_few_outer_quotes_ask_for_no_line():
    chain = _chain(_straight_wings, n_k=7)   # one outer quote per expiry, all puts: 4 < MIN_TESTED, no calls
    assert wing_fit(chain).alpha == (0.0, 0.0)


def test_the_continuation_is_nil_inside_and_the_line_just_beyond():
    T, k_lo, k_hi = 0.5, -0.2, 0.15
    iv_fn = lambda k: 0.2 + 0.3 * np.asarray(k) ** 2 - 0.1 * np.asarray(k)   # noqa: E731
    u_fn = lambda k: np.asarray(k, np.float64) / 0.14                        # noqa: E731  (moves of 0.14)

    res = continuation(iv_fn, u_fn, T, k_lo, k_hi, (1.0, 1.0))
    inside = np.linspace(k_lo, k_hi, 50)
    assert (res(inside) == 0.0).all()
    # within HOLD_U warped units of each edge, the continued smile is the line from the edge, with
    # the smile's own level and (one-sided) slope there
    for side, k_e in ((-1, k_lo), (1, k_hi)):
        near = k_e + side * 0.14 * HOLD_U * np.array([0.2, 0.6, 0.95])
        h = 1e-6
        slope = (iv_fn(k_e) - iv_fn(k_e - side * h)) / (side * h)
        np.testing.assert_allclose(iv_fn(near) + res(near), line_iv(near, T, k_e, iv_fn(k_e), slope), atol=1e-8)
        # the smile leaves the edge with its own slope: no kink there (a kink bending the wrong
        # way is a butterfly arbitrage finer than any check set)
        step = 1e-4
        out_slope = (iv_fn(k_e + side * step) + res(np.array([k_e + side * step]))[0] - iv_fn(k_e)) / (side * step)
        assert abs(out_slope - slope) < 1e-3 * max(abs(slope), 1.0), (out_slope, slope)
    # far beyond, it fades back to the smile's own wing
    far = np.array([k_lo - 0.14 * 8 * HOLD_U, k_hi + 0.14 * 8 * HOLD_U])
    np.testing.assert_allclose(res(far), 0.0, atol=1e-9)
    # a blend of 0 on a side leaves that side alone; on both sides there is nothing to continue
    half = continuation(iv_fn, u_fn, T, k_lo, k_hi, (0.0, 1.0))
    assert (half(np.array([k_lo - 0.05])) == 0.0).all() and (half(np.array([k_hi + 0.05])) != 0.0).all()
    assert continuation(iv_fn, u_fn, T, k_lo, k_hi, (0.0, 0.0)) is None


def test_the_wing_leaves_the_quoted_range_untouched(monkeypatch):
    """The continuation sits on top of the chosen GP correction: inside every expiry's quoted range
    the surface is the one svi_gp builds with the SVI wing on both sides."""
    import core.chain.svi_gp as sg

    chain = _chain(_straight_wings)
    with_wing = get_chain_method("svi_gp").fit(chain)
    assert with_wing.wing_alpha[0] > 0.0
    assert any("+wing" in kind for kind in with_wing.params()["kind"])
    monkeypatch.setattr(sg, "wing_fit", lambda quotes: dataclasses.replace(wing_fit(quotes), alpha=(0.0, 0.0)))
    without = get_chain_method("svi_gp").fit(chain)
    for i, T in enumerate(with_wing.expiries):
        k = np.linspace(*with_wing.k_bounds[i], 41)
        np.testing.assert_allclose(with_wing.iv(np.full(k.size, T), k), without.iv(np.full(k.size, T), k),
                                   rtol=0, atol=1e-12)
    beyond = np.full(1, with_wing.k_bounds[-1, 0] - 0.05)
    assert with_wing.iv(np.array([with_wing.expiries[-1]]), beyond) > without.iv(np.array([with_wing.expiries[-1]]), beyond)


def _wing_scores(chain):
    hide = wing_mask(chain)
    train, test = chain.subset(~hide), chain.subset(hide)
    out = {}
    for name in ("svi_gp", "svi_fit"):
        s = get_chain_method(name).fit(train, ask=(test.T, test.k))
        out[name] = (float(np.sqrt(np.mean((s.quote_iv(test.T, test.k) - test.iv) ** 2))), dense_check(s))
    return out


def test_svi_gp_follows_straight_wings_beyond_the_quotes_arbitrage_free():
    scores = _wing_scores(_chain(_straight_wings))
    (gp, gp_check), (svi, _) = scores["svi_gp"], scores["svi_fit"]
    assert gp_check.ok, gp_check.to_dict()
    assert gp < 0.7 * svi, (gp, svi)


def test_svi_gp_keeps_svi_wings_where_they_are_right():
    scores = _wing_scores(_chain(_svi_smiles))
    (gp, gp_check), (svi, _) = scores["svi_gp"], scores["svi_fit"]
    assert gp_check.ok, gp_check.to_dict()
    assert gp <= svi + 2e-4, (gp, svi)


def test_a_slice_with_no_edge_on_the_chosen_side_is_left_alone():
    """A blend for puts only, on a slice quoted only above the forward: nothing to continue."""
    from core.chain.corrected import CorrectedSlice, _with_wing
    from core.chain.surface import SVISlice

    base = SVISlice((0.02, 0.1, -0.5, 0.0, 0.2))
    chosen = CorrectedSlice(base, 0.5, None, 0.0)
    u_fn = lambda k: np.asarray(k, np.float64) / 0.14       # noqa: E731
    wing = lambda iv_fn: continuation(iv_fn, u_fn, 0.5, 0.01, 0.3, (1.0, 0.0))   # noqa: E731
    k = np.linspace(-1.0, 1.0, 201)
    assert _with_wing(chosen, wing, 0.5, k, None, None, 0.07) is chosen


def test_a_wing_layer_reports_and_applies_both_corrections():
    """A wing continuation on top of a GP correction: w applies both, ``applied`` is their sum,
    ``own`` is the wing alone, and the parameter row names both with their shares."""
    from core.chain.corrected import CorrectedSlice
    from core.chain.surface import SVISlice

    T = 0.5
    base = SVISlice((0.02, 0.1, -0.5, 0.0, 0.2))
    gp = CorrectedSlice(base, T, lambda k: 0.002 * np.ones_like(np.asarray(k, float)), 0.5)
    wing = CorrectedSlice(gp, T, lambda k: np.where(np.asarray(k) < -0.3, 0.004, 0.0), 1.0)
    k = np.array([-0.5, 0.0, 0.2])
    np.testing.assert_allclose(wing.applied(k), [0.001 + 0.004, 0.001, 0.001])
    np.testing.assert_allclose(wing.own(k), [0.004, 0.0, 0.0])
    iv = np.sqrt(base.w(k) / T) + wing.applied(k)
    np.testing.assert_allclose(wing.w(k), iv**2 * T, rtol=1e-12)
    row = wing.row()
    assert row["kind"] == "svi+gp+wing" and row["gp_factor"] == 0.5 and row["wing_factor"] == 1.0
    bare = CorrectedSlice(base, T, None, 0.0)
    assert (bare.own(k) == 0.0).all() and (bare.applied(k) == 0.0).all()


def test_the_wing_test_reports_every_tested_quote_beyond_its_edge():
    chain = _chain(_straight_wings)
    fit = wing_fit(chain)
    assert set(np.unique(fit.side)) == {-1, 1}
    # each tested quote is one of the chain's, at its expiry, beyond the visible edge on its side
    np.testing.assert_array_equal(chain.T[fit.idx], fit.T)
    np.testing.assert_array_equal(chain.k[fit.idx], fit.k)
    assert (fit.side * (fit.k - fit.k_edge) > 0).all()
    # the misses are against the blend the chain chose: small where the wings are straight lines
    assert np.sqrt(np.mean(fit.miss**2)) < 0.01, fit.miss


def test_the_rate_covers_the_tested_misses_at_its_levels():
    rng = np.random.default_rng(3)
    d = rng.uniform(0.05, 1.0, 400)
    miss = 0.02 * d * rng.normal(size=d.size)
    base = np.full(d.size, 1e-3)
    one = lambda level: 1.0        # noqa: E731
    r = rate(miss, base, d, one)
    covered = np.mean(np.abs(miss) <= base + r * d)
    # the mean of the 80 % and 95 % levels' own rates: coverage between the two levels
    assert 0.8 <= covered <= 0.95, covered
    # misses all at 2 per unit of distance need exactly 2; misses inside the base need nothing
    assert rate(2.0 * d, np.zeros(d.size), d, one) == 2.0
    assert rate(0.5 * base, base, d, one) == 0.0
    assert rate(miss[:MIN_TESTED - 1], base[:MIN_TESTED - 1], d[:MIN_TESTED - 1], one) is None


def test_svi_gp_widens_beyond_the_quotes_as_far_as_its_own_outer_quotes_miss():
    """The sd's growth beyond the quotes is calibrated per side on the chain's own wing test: a put
    wing that bends away from anything the inner quotes predict (its misses grow with the distance)
    asks for a faster-widening put interval than a straight one."""
    clean = _chain(_straight_wings)
    z = clean.k / (0.2 * np.sqrt(clean.T))            # the chain's z grid, -4 to 3
    bent_iv = clean.iv + 0.01 * np.maximum(-z - 2.0, 0.0) ** 2
    rough = ChainQuotes(T=clean.T, k=clean.k, iv=bent_iv, iv_bid=bent_iv - 5e-4, iv_ask=bent_iv + 5e-4,
                        forward=clean.forward, discount=clean.discount, weight=clean.weight)
    fits = {name: get_chain_method("svi_gp").fit(q) for name, q in (("clean", clean), ("rough", rough))}
    rates = {name: s.wing_rates for name, s in fits.items()}
    assert rates["rough"][0] > 2.0 * rates["clean"][0], rates
    # the call side had too few tested quotes: the fixed rate
    assert rates["rough"][1] == rates["clean"][1] == GPConfig().wing_sd_rel, rates
    # the sd beyond the lowest put grows at the put side's rate (times the expiry's ATM vol and the
    # conformal scale) per warped unit of distance
    s, T = fits["rough"], fits["rough"].expiries[-1]
    k_lo = s.k_bounds[-1, 0]
    grow = np.diff(s.sd(np.full(2, T), np.array([k_lo - 0.2, k_lo - 0.4])))[0]
    grow_clean = np.diff(fits["clean"].sd(np.full(2, T), np.array([k_lo - 0.2, k_lo - 0.4])))[0]
    assert grow > 0 and grow_clean > 0 and grow > 1.5 * grow_clean, (grow, grow_clean)
