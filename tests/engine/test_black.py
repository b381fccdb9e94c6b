"""core.engine.black: parity, round trips over a wide random set, accuracy of the normalised Black
function against 50-digit mpmath, and the bad-quote rules (NaN + reason code, never a raise)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine.black import (
    QuoteStatus,
    black_price,
    implied_total_vol_otm,
    implied_vol,
    normalised_log_price,
    price_bounds_violation,
    quote_status,
)

EPS = np.finfo(float).eps


def random_quotes(n, seed):
    """The brief's box: iv in [0.01, 3], T in [1/365, 5] y, |k| <= 1.5, F over 6 decades,
    discount in [0.5, 1.1], calls and puts."""
    rng = np.random.default_rng(seed)
    iv = 10 ** rng.uniform(-2, np.log10(3), n)
    T = 10 ** rng.uniform(np.log10(1 / 365), np.log10(5), n)
    k = rng.uniform(-1.5, 1.5, n)
    F = 10 ** rng.uniform(-2, 4, n)
    D = rng.uniform(0.5, 1.1, n)
    call = rng.uniform(size=n) < 0.5
    return iv, T, k, F, F * np.exp(k), D, call


def otm_price_over_forward(iv, T, k):
    """OTM Black price / F, computed in log space (for deciding where a price holds information)."""
    return np.exp(normalised_log_price(-np.abs(k), iv * np.sqrt(T)) + 0.5 * k)


# --------------------------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------------------------

def test_put_call_parity_over_random_set():
    iv, T, _, F, K, D, _ = random_quotes(20_000, 1)
    c = black_price(F, K, T, iv, True, D)
    p = black_price(F, K, T, iv, False, D)
    assert (np.abs((c - p) - D * (F - K)) <= 4 * EPS * D * (F + K)).all()


def test_normalised_price_matches_mpmath():
    """ln b(x, s) to ~1e-14 relative in b (plus eps |ln b|: the exponent itself is rounded)
    over all three evaluation regions, where b > 1e-300."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    rng = np.random.default_rng(2)
    x = -np.abs(rng.uniform(-1.6, 1.6, 400))
    x[:40] = -(10 ** rng.uniform(-12, -2, 40))          # near the money: tiny |x|
    s = 10 ** rng.uniform(np.log10(5e-4), np.log10(7.0), 400)
    ours = normalised_log_price(x, s)
    ref = np.array([float(mp.log(mp.exp(a / 2) * mp.ncdf(a / b + b / 2)
                                 - mp.exp(-a / 2) * mp.ncdf(a / b - b / 2)))
                    for a, b in zip(map(mp.mpf, x), map(mp.mpf, s))])
    keep = ref > -690
    assert keep.sum() > 250
    assert (np.abs(ours[keep] - ref[keep]) <= 2e-14 + 2 * EPS * np.abs(ref[keep])).all()


def test_zero_vol_gives_discounted_intrinsic_and_price_rises_with_vol():
    F, K, D = np.array([100.0, 100.0]), np.array([90.0, 110.0]), 0.9
    np.testing.assert_allclose(black_price(F, K, 1.0, 0.0, True, D), D * np.maximum(F - K, 0))
    prices = black_price(100.0, 120.0, 0.5, np.linspace(0.01, 3, 300), True)
    assert (np.diff(prices) > 0).all()
    assert prices[-1] < 100.0


def test_black_price_broadcasts_and_rejects_bad_inputs_elementwise():
    out = black_price(np.array([[100.0], [50.0]]), np.array([90.0, 100.0, 110.0]), 1.0, 0.2, True)
    assert out.shape == (2, 3) and np.isfinite(out).all()
    bad = black_price([100, np.nan, 100, 100, -1, 100], [100, 100, np.inf, 100, 100, 0],
                      [1, 1, 1, 0, 1, 1], 0.2, True)
    assert np.isfinite(bad[0]) and np.isnan(bad[1:]).all()
    assert np.isnan(black_price(100, 100, 1, -0.1, True))
    with pytest.raises(ValueError):
        black_price(np.ones(3), np.ones(4), 1.0, 0.2, True)


# --------------------------------------------------------------------------------------------
# Inversion
# --------------------------------------------------------------------------------------------

def test_round_trip_wide_random_set():
    """iv -> price -> iv within 1e-8 (we get ~1e-13) wherever the OTM price is above 1e-14 F,
    and the recovered vol reprices the time value to 1e-12 relative."""
    iv, T, k, F, K, D, call = random_quotes(100_000, 3)
    price = black_price(F, K, T, iv, call, D)
    iv2, status = implied_vol(price, F, K, T, call, D, return_status=True)
    otm = np.where(call, k >= 0, k <= 0)
    info = otm & (otm_price_over_forward(iv, T, k) > 1e-14)
    assert info.sum() > 20_000
    assert (status[info] == QuoteStatus.OK).all()
    assert np.abs(iv2[info] - iv[info]).max() < 1e-8
    intrinsic = D * np.where(call, np.maximum(F - K, 0), np.maximum(K - F, 0))
    tv, tv2 = price - intrinsic, black_price(F, K, T, iv2, call, D) - intrinsic
    assert (np.abs(tv2 - tv) / tv)[info].max() < 1e-12


def test_round_trip_in_the_money_limited_only_by_price_rounding():
    """An ITM price carries its time value to within ~eps * price; the vol error must not
    exceed what that rounding allows (eps * price / vega), times a small factor."""
    iv, T, k, F, K, D, call = random_quotes(50_000, 4)
    price = black_price(F, K, T, iv, call, D)
    iv2, status = implied_vol(price, F, K, T, call, D, return_status=True)
    itm = np.where(call, k < 0, k > 0) & (status == QuoteStatus.OK)
    s = iv * np.sqrt(T)
    x = np.log(F / K)
    vega = D * np.sqrt(F * K) * np.sqrt(T) * np.exp(-0.5 * ((x / s) ** 2 + (s / 2) ** 2)) / np.sqrt(2 * np.pi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        allowed = 1e-10 + 64 * EPS * price / vega
    itm &= vega > 0
    assert itm.sum() > 10_000
    assert (np.abs(iv2 - iv)[itm] <= allowed[itm]).all()


@settings(max_examples=200, deadline=None)
@given(
    iv=st.floats(0.01, 3.0),
    T=st.floats(1 / 365, 5.0),
    k=st.floats(-1.5, 1.5),
    F=st.floats(1e-3, 1e5),
    D=st.floats(0.3, 1.2),
    call=st.booleans(),
)
def test_round_trip_property(iv, T, k, F, D, call):
    K = F * np.exp(k)
    otm = (k >= 0) == call
    price = black_price(F, K, T, iv, call, D)
    if otm and otm_price_over_forward(iv, T, k) > 1e-14:
        assert abs(implied_vol(price, F, K, T, call, D) - iv) < 1e-8
    else:
        # ITM or information-free: still either a finite positive vol or flagged, never garbage
        got, status = implied_vol(price, F, K, T, call, D, return_status=True)
        assert (status == QuoteStatus.OK and got > 0) or (np.isnan(got) and status != 0)


def test_tiny_prices_invert_in_log_space():
    """A 1e-260 OTM call still has a vol (no underflow on the way), as has a high-vol one."""
    iv = np.array([0.04, 0.05, 2.5])
    T = np.array([0.25, 0.1, 3.0])
    K = np.array([2.0, 1.5, 1.0])
    price = black_price(1.0, K, T, iv, True)
    assert 0 < price[0] < 1e-250 and 0 < price[1] < 1e-100
    np.testing.assert_allclose(implied_vol(price, 1.0, K, T, True), iv, rtol=1e-12)
    s = implied_total_vol_otm(np.log(K), np.log(price))
    np.testing.assert_allclose(s, iv * np.sqrt(T), rtol=1e-12)


def test_at_the_money_and_near_money_inputs():
    F = 100.0
    for K in (100.0, 100.0 * (1 + 1e-12), 100.0 * (1 - 1e-9)):
        for iv in (0.01, 0.3, 2.0):
            p = black_price(F, K, 0.25, iv, True)
            assert implied_vol(p, F, K, 0.25, True) == pytest.approx(iv, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Bad quotes: NaN plus a reason code, elementwise
# --------------------------------------------------------------------------------------------

def test_bounds_violations_are_flagged_with_reasons():
    F, K, T, D = 100.0, 90.0, 1.0, 0.95
    lower_call, upper_call = D * (F - K), D * F
    lower_put, upper_put = 0.0, D * K
    price = np.array([lower_call - 1e-9, lower_call, lower_call + 1.0, upper_call, upper_call + 1e-9,
                      lower_put, upper_put, upper_put * 1.01, -1.0])
    call = np.array([True, True, True, True, True, False, False, False, False])
    expected = [QuoteStatus.BELOW_INTRINSIC, QuoteStatus.AT_INTRINSIC, QuoteStatus.OK,
                QuoteStatus.AT_UPPER, QuoteStatus.ABOVE_UPPER, QuoteStatus.AT_INTRINSIC,
                QuoteStatus.AT_UPPER, QuoteStatus.ABOVE_UPPER, QuoteStatus.BELOW_INTRINSIC]
    status = quote_status(price, F, K, T, call, D)
    np.testing.assert_array_equal(status, expected)
    bad = price_bounds_violation(price, F, K, T, call, D)
    np.testing.assert_array_equal(bad, np.array(expected) != QuoteStatus.OK)
    iv = implied_vol(price, F, K, T, call, D)
    np.testing.assert_array_equal(np.isnan(iv), bad)
    assert iv[2] > 0


def test_invalid_inputs_give_nan_and_reason_not_exceptions():
    price = np.array([5.0, np.nan, 5.0, 5.0, 5.0, 5.0, 5.0, np.inf])
    F = np.array([100.0, 100.0, -100.0, 100.0, 100.0, 100.0, np.inf, 100.0])
    K = np.array([100.0, 100.0, 100.0, 0.0, 100.0, 100.0, 100.0, 100.0])
    T = np.array([1.0, 1.0, 1.0, 1.0, -1.0, 1.0, 1.0, 1.0])
    D = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    iv, status = implied_vol(price, F, K, T, True, D, return_status=True)
    np.testing.assert_array_equal(status, [QuoteStatus.OK, QuoteStatus.NONFINITE_INPUT,
                                           QuoteStatus.NONPOSITIVE_INPUT, QuoteStatus.NONPOSITIVE_INPUT,
                                           QuoteStatus.NONPOSITIVE_INPUT, QuoteStatus.NONPOSITIVE_INPUT,
                                           QuoteStatus.NONFINITE_INPUT, QuoteStatus.NONFINITE_INPUT])
    assert np.isfinite(iv[0]) and np.isnan(iv[1:]).all()


def test_upper_bound_within_rounding_is_flagged_not_inverted():
    """A deep-OTM put priced at K*D to the last ulp has no finite vol: AT_UPPER, not a huge number."""
    F, K = 1.0, 1e-3
    p = black_price(F, K, 5.0, 3.0, False)          # ~K: the vol is effectively infinite
    iv, status = implied_vol(np.nextafter(K, 0.0), F, K, 5.0, False, return_status=True)
    assert status in (QuoteStatus.OK, QuoteStatus.AT_UPPER)
    if status == QuoteStatus.OK:
        assert iv > 3.0 and np.isfinite(iv)
    assert black_price(F, K, 5.0, 3.0, False) == pytest.approx(p)


def test_overshoot_from_a_high_guess_regression():
    """Found in a 1e6-quote sweep: the first Halley step from above the root jumped to s ~ 1e-7,
    where tiny (Halley-shrunk) steps were mistaken for convergence."""
    iv, T, k = 0.31983314573923183, 0.0033858249478956087, 0.10364660310867713
    price = black_price(1.0, np.exp(k), T, iv, True)
    assert implied_vol(price, 1.0, np.exp(k), T, True) == pytest.approx(iv, abs=1e-12)


def test_otm_sweep_down_to_1e300_prices():
    """300k OTM quotes over the brief's box: every price above 1e-300 gives back its vol."""
    rng = np.random.default_rng(11)
    n = 300_000
    iv = 10 ** rng.uniform(-2, np.log10(3), n)
    T = 10 ** rng.uniform(np.log10(1 / 365), np.log10(5), n)
    k = rng.uniform(-1.5, 1.5, n)
    price = black_price(1.0, np.exp(k), T, iv, k >= 0)
    got = implied_vol(price, 1.0, np.exp(k), T, k >= 0)
    keep = price > 1e-300
    assert keep.sum() > 200_000
    assert np.abs(got - iv)[keep].max() < 1e-10
