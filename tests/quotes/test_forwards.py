"""Parity forwards and discounts on synthetic chains with known F and D; the fallbacks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.quotes.forwards import carry_forward, expiry_forwards, parity_fit
from core.synth.chains import ChainSpec, make_chain, surface_function

CASES = [("ssvi", 0, 0.04, 0.015), ("shifted_ssvi", 1, -0.005, 0.0), ("sabr_event", 2, 0.08, 0.03)]


def _chain(family, seed, rate, q, exact_mids: bool) -> pd.DataFrame:
    c = make_chain(surface_function(family, seed), ChainSpec(rate=rate, dividend_yield=q), seed=seed,
                   as_prices=True, both_types=True)
    if exact_mids:                        # bid = ask = the model price: parity holds exactly
        c["bid"] = c["ask"] = c["price"]
    return c.assign(is_call=c["type"] == "call")


def _errors(chain: pd.DataFrame, **options) -> tuple:
    fit = expiry_forwards(chain, **options).set_index("T")
    truth = chain.groupby("T")[["forward", "discount"]].first()
    assert (fit["source"] == "parity").all()
    return (np.abs(fit["forward"] / truth["forward"] - 1).max(), np.abs(fit["discount"] / truth["discount"] - 1).max())


@pytest.mark.parametrize("family,seed,rate,q", CASES)
def test_parity_recovers_known_forward_and_discount(family, seed, rate, q):
    err_f, err_d = _errors(_chain(family, seed, rate, q, exact_mids=True))
    assert err_f <= 1e-4 and err_d <= 1e-4


@pytest.mark.parametrize("family,seed,rate,q", CASES)
def test_parity_on_tick_rounded_quotes(family, seed, rate, q):
    """Bid/ask rounded out to the 0.05 tick: F to 1e-4 with the default 12 strikes; D (the slope,
    which needs a wider strike span) to 1e-4 with 16."""
    chain = _chain(family, seed, rate, q, exact_mids=False)
    assert _errors(chain)[0] <= 1e-4
    assert _errors(chain, n_near=16)[1] <= 1e-4


def test_one_stale_leg_does_not_move_the_forward():
    K = np.arange(4800.0, 5201.0, 25.0)
    F, D = 5012.3, 0.985
    call = np.maximum(F - K, 0) * D + 40.0
    put = call - D * (F - K)
    put[np.argmin(np.abs(K - F)) + 1] += 3.0          # one stale put next to the money
    fit = parity_fit(K, call, put, T=0.5)
    assert abs(fit.forward / F - 1) <= 1e-6 and abs(fit.discount / D - 1) <= 1e-6
    assert fit.rate == pytest.approx(-np.log(D) / 0.5, rel=1e-5)
    # the same points by plain least squares: the stale leg moves F well past that
    y = (call - put)[np.argsort(np.abs(call - put))[:12]]
    k = K[np.argsort(np.abs(call - put))[:12]]
    b, a = np.polyfit(k, y, 1)
    assert abs((a / -b) / F - 1) > 1e-5


def test_too_few_pairs_and_non_discount_slopes_are_refused():
    assert parity_fit([5000.0], [60.0], [50.0], T=0.5) is None
    K = np.array([4900.0, 5000.0, 5100.0])
    assert parity_fit(K, 0.3 * (5000 - K) + 50, np.full(3, 50.0), T=0.5) is None   # slope -0.3 is no D


def test_fallback_to_spot_and_rate_where_parity_cannot():
    calls_only = pd.DataFrame({"T": [0.5, 0.5, 1.0], "strike": [5000.0, 5100.0, 5000.0], "is_call": True,
                               "bid": [100.0, 60.0, 200.0], "ask": [101.0, 61.0, 202.0]})
    fit = expiry_forwards(calls_only, spot=5000.0, rate=0.03, dividend_yield=0.01)
    F, D = carry_forward(5000.0, 0.03, np.array([0.5, 1.0]), 0.01)
    assert list(fit["source"]) == ["spot+rate", "spot+rate"]
    np.testing.assert_allclose(fit["forward"], F)
    np.testing.assert_allclose(fit["discount"], D)
    none = expiry_forwards(calls_only)
    assert list(none["source"]) == ["none", "none"] and none["forward"].isna().all()
