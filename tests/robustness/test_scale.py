"""Issue 13 items 10-11: stale scores scale (no refit per quote above EXACT_MAX_QUOTES), and the
row cap holds for a DataFrame too. Full-size timings are commands (tools/make_big_chain.py; see
docs/robustness.md), not tests."""
import time

import numpy as np
import pandas as pd
import pytest

from core.quotes import stale as stale_mod
from core.quotes.read import MAX_ROWS, QuoteError
from core.quotes.workflow import repair_quotes
from tools.make_big_chain import big_chain


def test_dataframe_over_the_row_cap_is_refused_fast():
    frame = pd.DataFrame({"T": np.full(MAX_ROWS + 1, 0.5), "strike": 100.0, "forward": 100.0, "iv": 0.2})
    start = time.perf_counter()
    with pytest.raises(QuoteError, match="at most 200,000"):
        repair_quotes(frame, method="interp")
    assert time.perf_counter() - start < 2.0


def test_large_chain_scores_in_linear_time_without_refits(monkeypatch):
    def no_refits(*args, **kwargs):
        raise AssertionError("leave-out refits on a large chain")

    monkeypatch.setattr(stale_mod, "quote_scores", no_refits)
    frame = big_chain(stale_mod.EXACT_MAX_QUOTES * 3)
    start = time.perf_counter()
    out = repair_quotes(frame, method="interp")
    elapsed = time.perf_counter() - start
    scores = out.quote_table.loc[out.quote_table["status"] == "used", "stale_score"]
    assert scores.notna().mean() > 0.99 and out.stale_basis == stale_mod.IN_SAMPLE
    assert any("in-sample" in line for line in out.summary_lines())
    assert elapsed < 10.0, elapsed


def test_in_sample_score_flags_a_wild_quote():
    frame = big_chain(stale_mod.EXACT_MAX_QUOTES + 500, seed=1)
    frame.loc[10, "iv"] = frame.loc[10, "iv"] + 0.05       # 500 bp off: far above the noise
    out = repair_quotes(frame, method="interp")
    table = out.quote_table
    assert table.loc[table["row"] == 11, "stale_flag"].item()
    assert table["stale_flag"].mean() < 0.05


def test_small_chains_keep_the_exact_leave_out_score():
    frame = big_chain(400, seed=2)
    out = repair_quotes(frame, method="interp")
    assert out.stale_basis != stale_mod.IN_SAMPLE and out.quote_table["iv_leave_out"].notna().any()
