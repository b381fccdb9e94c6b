"""Property-based tests: random surfaces, masks and quote files never break the tool.

Either a ValueError with a one-line message, or outputs that are finite, positive and
calendar-free. CI runs a fast profile; the thorough run (>= 10,000 examples per test) is

    QUOTES_EXAMPLES=10000 python -m pytest tests/test_quotes_properties.py -q

(about an hour on one core; the README's quotes section reports its last result).
"""
import io
import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core.quotes.gridding import grid_quotes, leave_one_out
from core.quotes.workflow import repair_quotes
from core.synth.chains import surface_function
from core.synth.families import generate
from core.synth.missingness import make_masks, observe

EXAMPLES = int(os.environ.get("QUOTES_EXAMPLES", "30"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES < 1000,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
try:
    import core.engine.black as black
except ImportError:  # price files need core.engine.black
    black = None

FAMILIES = ("ssvi", "shifted_ssvi", "sabr_event")
BAD_CELLS = ("", "nan", "NaN", "inf", "-inf", "abc", "-0.2", "0", "1e308", "25", "1,5", " ", "null", "1e-320")


def _calendar_free(iv):
    return (np.diff(iv**2 * core.T_GRID[:, None], axis=-2) >= -1e-12).all()


def _one_line(exc):
    text = str(exc)
    return bool(text.strip()) and "\n" not in text and len(text) < 600


@st.composite
def quote_files(draw):
    """(bytes, file name) of a random, often damaged, quote file over one of our surfaces."""
    family = draw(st.sampled_from(FAMILIES))
    f = surface_function(family, draw(st.integers(0, 10_000)))
    n_exp = draw(st.integers(1, 7))
    expiries = draw(st.lists(st.floats(0.005, 3.0), min_size=n_exp, max_size=n_exp))
    rows = []
    for T in expiries:
        n_k = draw(st.integers(1, 14))
        ks = draw(st.lists(st.floats(-0.7, 0.7), min_size=n_k, max_size=n_k))
        rows += [(T, k) for k in ks]
    df = pd.DataFrame(rows, columns=["T", "k"])
    df["iv"] = np.sqrt(f(df["T"].to_numpy(), df["k"].to_numpy()) / df["T"].to_numpy())
    df["iv"] += draw(st.floats(0.0, 0.01)) * np.random.default_rng(len(df)).normal(size=len(df))
    form = draw(st.sampled_from(["T,k,iv", "strike", "dates", "bidask"] + (["price"] if black else [])))
    if form in ("strike", "dates", "price"):
        df["forward"] = 100.0
        df["strike"] = 100.0 * np.exp(df["k"])
        df = df.drop(columns="k")
    if form == "dates":
        base = pd.Timestamp("2025-01-02")
        df["expiry"] = [(base + pd.Timedelta(days=int(round(t * 365)))).strftime("%Y-%m-%d") for t in df["T"]]
        df["valuation_date"] = draw(st.sampled_from(["2025-01-02", "2026-06-30"]))   # second: wrong order
        df = df.drop(columns="T")
    if form == "bidask":
        half = draw(st.floats(0.0, 0.05))
        df["bid"], df["ask"] = df["iv"] - half, df["iv"] + half
        if draw(st.booleans()):
            df = df.drop(columns="iv")
    if form == "price":
        is_call = draw(st.booleans())
        df["type"] = "call" if is_call else "put"
        df["discount"] = draw(st.floats(0.5, 1.0))
        df["price"] = black.black_price(df["forward"], df["strike"], df["T"], df["iv"], is_call, df["discount"])
        df = df.drop(columns="iv")
    df = df.astype(object)
    # Damage: bad cells, duplicated rows, dropped or renamed columns, junk columns.
    for _ in range(draw(st.integers(0, 4))):
        if len(df) == 0:
            break
        i = draw(st.integers(0, len(df) - 1))
        col = draw(st.sampled_from(list(df.columns)))
        df.iat[i, df.columns.get_loc(col)] = draw(st.sampled_from(BAD_CELLS))
    if draw(st.booleans()) and len(df):
        df = pd.concat([df, df.iloc[: draw(st.integers(1, len(df)))]])
    if draw(st.integers(0, 9)) == 0:
        df = df.drop(columns=draw(st.sampled_from(list(df.columns))))
    if draw(st.integers(0, 9)) == 0:
        df = df.rename(columns={df.columns[0]: "junk"})
    if draw(st.integers(0, 9)) == 0:
        df = df.iloc[: draw(st.integers(0, 3))]
    if draw(st.booleans()):
        return df.to_csv(index=False).encode(), "q.csv"
    buf = io.BytesIO()
    df.astype(str).to_parquet(buf, index=False)
    return buf.getvalue(), "q.parquet"


@SETTINGS
@given(quote_files(), st.sampled_from(core.METHODS), st.booleans())
def test_random_quote_files_repair_or_fail_clearly(file, method, stale):
    data, name = file
    try:
        out = repair_quotes(data, method=method, stale=stale, name=name)
    except ValueError as exc:
        assert _one_line(exc), repr(exc)
        return
    iv = out.result.iv
    assert np.isfinite(iv).all() and (iv > 0).all() and _calendar_free(iv)
    q = out.quote_table
    used = q["status"] == "used"
    assert used.sum() >= 4 and np.isfinite(q.loc[used, "iv_repaired"]).all() and (q.loc[used, "iv_repaired"] > 0).all()
    assert np.isfinite(q.loc[used, "residual"]).all()
    scores = q.loc[used, "stale_score"].to_numpy(dtype=float)
    assert not np.isinf(scores).any()
    if out.stale_basis.endswith("leave-out"):      # |robust z|; a method's own score (best: a log LR) may be < 0
        assert (np.isnan(scores) | (scores >= 0)).all()
    assert q["stale_flag"].dtype == bool and not q.loc[~used, "stale_flag"].any()
    assert (q.loc[used, "stale_flag"].to_numpy() == (np.nan_to_num(scores, nan=-np.inf) > out.stale_threshold)).all()
    svi = out.svi_table
    assert len(svi) == 13 and np.isfinite(svi[["a", "b", "rho", "m", "sigma"]].to_numpy()).all()
    rep = out.report
    assert rep.n_used + rep.n_outside + rep.n_skipped + rep.n_dropped == rep.n_rows == len(q)


@SETTINGS
@given(st.sampled_from(["shifted_ssvi", "sabr_event", "ssvi"]), st.integers(0, 10_000),
       st.sampled_from(["regular", "adversarial", "random"]), st.floats(0.0, 1.0),
       st.sampled_from(core.METHODS), st.floats(0.01, 3.0))
def test_random_surfaces_and_masks_on_the_grid(family, seed, regime, density, method, scale):
    w = generate(family, 1, seed)
    if regime == "random":
        mask = np.random.default_rng(seed).random((1, 13, 17)) < density
    else:
        mask = make_masks(regime, 1, seed + 1)
    iv_obs = np.clip(observe(w, mask, seed + 2) * scale, 1e-3, 6.0)[0]
    try:
        res = core.repair(iv_obs, method)
    except ValueError as exc:
        assert _one_line(exc)
        below_floor = (iv_obs**2 * core.T_GRID[:, None] < 1e-5)[np.isfinite(iv_obs)].any()   # issue 13 item 8
        assert mask.sum() < 4 or (iv_obs[np.isfinite(iv_obs)] > 5).any() or below_floor
        return
    assert np.isfinite(res.iv).all() and (res.iv > 0).all() and _calendar_free(res.iv)
    # the same surface as quotes on the grid gives the same repair
    T, K = np.meshgrid(core.T_GRID, core.K_GRID, indexing="ij")
    m = np.isfinite(iv_obs)
    g = grid_quotes(T[m], K[m], iv_obs[m])
    np.testing.assert_allclose(g.iv_obs[m], iv_obs[m], rtol=1e-12)


@SETTINGS
@given(st.lists(st.tuples(st.floats(0.08, 2.08), st.floats(-0.478, 0.478), st.floats(0.01, 3.0)),
                min_size=1, max_size=40))
def test_gridding_is_positive_linear_and_its_leave_one_out_exact(quotes):
    T, k, iv = (np.array(x) for x in zip(*quotes))
    g = grid_quotes(T, k, iv)
    obs = g.observed
    assert (g.iv_obs[obs] > 0).all() and np.isfinite(g.iv_obs[obs]).all()
    np.testing.assert_allclose((g.weights @ (iv * iv * T)).reshape(13, 17)[obs],
                               (g.iv_obs**2 * core.T_GRID[:, None])[obs], rtol=1e-9)
    for part, stack in leave_one_out(g, quotes=np.arange(min(T.size, 5))):
        for q, iv_loo in zip(part, stack):
            keep = np.arange(T.size) != q
            ref = grid_quotes(T[keep], k[keep], iv[keep]).iv_obs
            assert (np.isfinite(ref) == np.isfinite(iv_loo)).all()
            np.testing.assert_allclose(iv_loo[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-9)
