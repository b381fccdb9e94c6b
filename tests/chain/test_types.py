"""ChainQuotes: validation, helpers, and the converter from the quote importer."""
import numpy as np
import pytest

from core.chain.types import ChainQuotes, from_quoteset
from core.quotes.read import normalise_quotes


def _quotes(n=6):
    T = np.repeat([0.1, 0.5], n // 2)
    return dict(T=T, k=np.tile(np.linspace(-0.1, 0.1, n // 2), 2), iv=np.full(n, 0.2), iv_bid=np.full(n, np.nan),
                iv_ask=np.full(n, np.nan), forward=np.ones(n), discount=np.ones(n), weight=np.ones(n))


def test_helpers():
    q = ChainQuotes(**_quotes())
    np.testing.assert_allclose(q.expiries, [0.1, 0.5])
    assert q.slice(1).sum() == 3 and q.slice(1)[3:].all()
    sub = q.subset(q.slice(0))
    assert len(sub) == 3 and sub.expiries.size == 1
    np.testing.assert_allclose(q.w, 0.04 * q.T)


@pytest.mark.parametrize("field,value,match", [("T", np.zeros(6), "T must be > 0"), ("iv", -np.ones(6), "iv must be > 0"),
                                               ("k", np.r_[np.nan, np.zeros(5)], "k has 1 non-finite"),
                                               ("weight", np.ones(5), "weight has 5 entries")])
def test_bad_input_names_the_field(field, value, match):
    kw = _quotes()
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        ChainQuotes(**kw)


def test_from_quoteset_keeps_quotes_beyond_the_grid(small_frame):
    qs = normalise_quotes(small_frame[["T", "k", "iv", "bid", "ask"]])
    assert (qs.table["status"] == "outside").any()          # the grid workflow sets some aside ...
    chain = from_quoteset(qs)
    assert len(chain) == int(qs.table["status"].isin(["used", "outside"]).sum())   # ... the chain path does not
    assert len(from_quoteset(qs, include_outside=False)) == len(qs.used)
    assert np.isfinite(chain.iv_bid).all() and (chain.iv_bid <= chain.iv).all() and (chain.iv <= chain.iv_ask).all()
