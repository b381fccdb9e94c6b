"""Reading and validating quote files: every malformed kind ends in one clear ValueError."""
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from core.engine.grid import K_GRID, T_GRID
from core.quotes.read import MAX_ROWS, QuoteError, normalise_quotes, read_quotes
from tests.quotes.quote_cases import (
    MALFORMED,
    OUTSIDE_GRID,
    csv_bytes,
    good_chain,
    grid_quotes_csv,
    parquet_bytes,
)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_gives_one_line_value_error(case):
    """Through the grid workflow: read errors, and the grid's own (a single expiry) after reading."""
    from core.quotes.workflow import repair_quotes

    data, name, pattern = MALFORMED[case]
    with pytest.raises(ValueError, match=pattern) as info:
        repair_quotes(data, name=name, method="interp", stale=False)
    assert isinstance(info.value, QuoteError)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


@pytest.mark.parametrize("case", sorted(OUTSIDE_GRID))
def test_quotes_outside_the_grid_read_but_a_grid_repair_refuses_them(case):
    """A file whose expiries lie outside the grid's box is a chain like any other (it is read; a
    chain repair takes it): only a grid repair refuses it, in one line naming the box and --chain."""
    from core.quotes.workflow import repair_quotes

    data, name, pattern = OUTSIDE_GRID[case]
    quotes = read_quotes(data, name=name)
    assert (quotes.table["status"] == "outside").sum() >= 3
    with pytest.raises(QuoteError, match=pattern) as info:
        repair_quotes(quotes, method="interp", stale=False)
    assert "\n" not in str(info.value)


def test_one_smile_is_repaired_with_chain_by_the_per_expiry_methods():
    """A single expiry: read, refused by a grid repair and by a grid method on the chain path (one
    line naming the per-expiry methods), repaired by svi_fit, svi_gp and ah; other times are marked
    extrapolated."""
    from core.chain.workflow import repair_chain

    data, name, _ = MALFORMED["single expiry"]
    assert read_quotes(data, name=name).report.n_expiries == 1
    with pytest.raises(ValueError, match="grid method and needs quotes on 2 expiries or more.*svi_gp"):
        repair_chain(data, name=name, method="interp", stale=False)
    for method in ("svi_fit", "svi_gp", "ah"):
        result = repair_chain(data, name=name, method=method, stale=False)
        assert result.surface.expiries.size == 1 and result.dense.ok
        qt = result.quote_table
        assert np.abs(qt["iv_repaired"] - qt["iv"]).max() < 0.003 and not qt["extrapolated"].any()
        assert result.surface.extrapolated(np.array([0.25, 1.0]), np.zeros(2)).all()


def test_a_chain_of_weeklies_only_is_repaired_with_chain():
    """Expiries of 3 and 10 days, all below the grid's 0.08 years: refused before (every quote was
    "outside the grid" at read time), repaired on their own domain now."""
    from core.chain.workflow import repair_chain

    rows = [(T, k, 0.2 + 0.1 * k * k) for T in (3 / 365, 10 / 365) for k in np.linspace(-0.1, 0.1, 9)]
    result = repair_chain(grid_quotes_csv(rows), name="weeklies.csv", stale=False)
    assert result.surface.expiries.size == 2 and result.dense.ok
    used = result.quote_table["status"].isin(["used", "outside"])
    assert np.abs(result.quote_table.loc[used, "iv_repaired"] - result.quote_table.loc[used, "iv"]).max() < 0.002


def test_good_chain_reads_and_reports_every_row():
    df = good_chain()
    qs = read_quotes(csv_bytes(df), name="chain.csv")
    t = qs.table
    assert len(t) == len(df) and list(t["row"]) == list(range(1, len(df) + 1))
    assert set(t["status"]) <= {"used", "outside", "skipped", "dropped"}
    rep = qs.report
    assert rep.n_used + rep.n_outside + rep.n_skipped + rep.n_dropped == rep.n_rows == len(df)
    assert rep.kind == "iv" and rep.n_expiries >= 2
    used = t[t["status"] == "used"]
    # bid and ask given: the mid is the quote, the spread is kept
    np.testing.assert_allclose(used["iv"], 0.5 * (used["bid"] + used["ask"]))
    assert (used["spread_iv"] > 0).all()
    np.testing.assert_allclose(used["k"], np.log(used["strike"] / used["forward"]))
    # every quote outside the grid is listed with its reason, none vanish
    outside_rows = sorted(r for rows in rep.outside.values() for r in rows)
    assert outside_rows == sorted(t.loc[t["status"] == "outside", "row"])


def test_parquet_and_csv_agree_and_semicolons_work():
    df = good_chain(seed=5)[["T", "strike", "forward", "iv"]]
    a = read_quotes(csv_bytes(df), name="a.csv").table
    b = read_quotes(parquet_bytes(df), name="a.parquet").table
    c = read_quotes(df.to_csv(index=False, sep=";").encode(), name="a.csv").table
    for other in (b, c):
        np.testing.assert_allclose(a["iv"], other["iv"])
        assert list(a["status"]) == list(other["status"])


def test_column_names_are_case_insensitive_and_extra_columns_reported():
    data = b" t ,K,IV,comment\n0.5,0,0.2,x\n0.5,0.1,0.21,y\n1.0,0,0.2,z\n1.0,0.1,0.2,w\n"
    qs = read_quotes(data, name="q.csv")
    assert qs.report.n_used == 4 and qs.report.columns_ignored == ["comment"]
    assert any("ignored column" in line for line in qs.report.lines())


def test_row_problems_are_dropped_with_reasons_not_silently():
    rows = [(T_GRID[i], K_GRID[j], 0.2) for i in (2, 6) for j in (6, 8, 10)]
    rows += [(0.5, 0.0, "abc"), (0.5, 0.1, "inf"), (0.5, 0.1, -0.3), (0.5, 0.2, 25.0), (0.5, 0.3, "")]
    qs = read_quotes(grid_quotes_csv(rows), name="q.csv")
    d = qs.report.dropped
    assert d["non-numeric value in iv"] == [7]
    assert d["infinite iv"] == [8]
    assert d["iv <= 0"] == [9]
    assert d["iv above 5 (percentages? give 0.20 for 20 %)"] == [10]
    assert d["missing iv"] == [11]
    assert qs.report.n_used == 6
    assert (qs.table.loc[qs.table["status"] == "dropped", "reason"] != "").all()


def test_duplicates_are_averaged_into_the_first_row():
    rows = [(T_GRID[i], K_GRID[j], 0.2) for i in (2, 6) for j in (6, 8, 10)] + [(T_GRID[2], K_GRID[8], 0.24)]
    qs = read_quotes(grid_quotes_csv(rows), name="q.csv")
    t = qs.table
    assert t.loc[1, "iv"] == pytest.approx(0.22) and t.loc[1, "n_merged"] == 2
    assert t.loc[6, "status"] == "skipped" and "duplicate" in t.loc[6, "reason"]


def test_expiry_dates_give_act365_T_and_partial_wrong_order_is_dropped():
    df = pd.DataFrame({"expiry": ["2025-06-20", "2025-06-20", "2025-12-19", "2025-12-19", "2024-12-20"],
                       "valuation_date": "2025-01-02", "k": [0.0, 0.1, 0.0, 0.1, 0.0], "iv": 0.2})
    qs = read_quotes(csv_bytes(df), name="q.csv")
    T = qs.table["T"].to_numpy()
    assert T[0] == pytest.approx((dt.date(2025, 6, 20) - dt.date(2025, 1, 2)).days / 365.0)
    assert qs.report.dropped == {"expiry on or before the valuation date": [5]}


def test_valuation_date_argument():
    data = b"expiry,k,iv\n2025-06-20,0,0.2\n2025-06-20,0.1,0.2\n2025-12-19,0,0.2\n2025-12-19,0.1,0.2\n"
    qs = read_quotes(data, name="q.csv", valuation_date="2025-01-02")
    assert qs.report.n_used == 4
    with pytest.raises(ValueError, match="valuation date 'soon' is not an ISO date"):
        read_quotes(data, name="q.csv", valuation_date="soon")


def test_size_and_row_caps(tmp_path):
    with pytest.raises(ValueError, match=r"over 0 MiB, the cap|the cap is"):
        read_quotes(b"T,k,iv\n" + b"0.5,0,0.2\n" * 100, name="q.csv", max_bytes=100)
    with pytest.raises(ValueError, match="more than 50 rows, the cap"):
        read_quotes(b"T,k,iv\n" + b"0.5,0,0.2\n" * 60, name="q.csv", max_rows=50)
    df = pd.DataFrame({"T": np.full(60, 0.5), "k": 0.0, "iv": 0.2})
    with pytest.raises(ValueError, match="60 rows; the cap is 50"):
        read_quotes(parquet_bytes(df), name="q.parquet", max_rows=50)
    big = tmp_path / "big.csv"
    big.write_bytes(b"T,k,iv\n" + b"0.5,0,0.2\n" * 2000)
    with pytest.raises(ValueError, match=r"big\.csv is 0\.0 MiB; the cap is 0 MiB"):
        read_quotes(big, max_bytes=1000)
    assert MAX_ROWS == 200_000


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(ValueError, match="quote file not found"):
        read_quotes(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        read_quotes(tmp_path)


def test_normalise_rejects_non_tables():
    with pytest.raises(ValueError, match="must be a table"):
        normalise_quotes([[0.5, 0, 0.2]])
    with pytest.raises(ValueError, match="has no columns"):
        normalise_quotes(pd.DataFrame())


def test_bid_above_ask_dropped_and_only_bid_warned():
    rows = "".join(f"{T},{k},{0.19},{0.21}\n" for T in (0.5, 1.0) for k in (-0.1, 0.0, 0.1))
    qs = read_quotes(("T,k,bid,ask\n" + rows + "0.5,0.2,0.25,0.2\n").encode(), name="q.csv")
    assert qs.report.dropped == {"bid above ask": [7]}
    qs = read_quotes(b"T,k,iv,bid\n0.5,0,0.2,0.1\n0.5,0.1,0.2,0.1\n1,0,0.2,0.1\n1,0.1,0.2,0.1\n", name="q.csv")
    assert any("only bid given" in w for w in qs.report.warnings)


def test_percent_vols_are_read_as_percent_and_said():
    """A low-vol chain in percent (2.2 = 2.2 %) is not 220 % vols: read as percent, with a note."""
    rows = [(T, k, 2.2) for T in (0.5, 1.0) for k in (-0.1, 0.0, 0.1)]
    qs = read_quotes(grid_quotes_csv(rows), name="q.csv")
    np.testing.assert_allclose(qs.used["iv"], 0.022)
    assert any("percent" in note for note in qs.report.notes)
    assert any("percent" in line for line in qs.report.lines())


def test_quote_fit_counts_the_repair_inside_each_bid_ask():
    """The several-methods table's numbers (core.quotes.workflow.compare_table): the share of used
    quotes whose repair lies inside their bid-ask in vol, and the RMSE of mid minus repair."""
    from core.quotes.workflow import compare_table, repair_quotes
    from core.settings import SAMPLES_DIR

    out = repair_quotes(SAMPLES_DIR / "quotes_iv.csv", method="interp", stale=False)
    used = out.quote_table["status"] == "used"
    fit = out.quote_fit()
    assert fit["n_used"] == used.sum() == out.report.n_used and fit["n_bid_ask"] == used.sum()
    assert fit["rmse_iv"] == pytest.approx(np.sqrt(np.mean(out.quote_table.loc[used, "residual"] ** 2)))
    # Move each used quote's bid/ask so the repair sits inside exactly every other one.
    qt = out.quote_table
    rep = qt["iv_repaired"].to_numpy()
    inside = np.zeros(len(qt), bool)
    inside[np.flatnonzero(used)[::2]] = True
    qt["iv_bid"] = np.where(inside, rep - 0.001, rep + 0.001)
    qt["iv_ask"] = qt["iv_bid"] + 0.002 * inside + 0.001 * ~inside
    assert out.quote_fit()["inside_bid_ask"] == pytest.approx(inside[used].mean())
    qt["iv_bid"] = np.nan   # no bid/ask at all: no share, not 0
    fit = out.quote_fit()
    assert fit["n_bid_ask"] == 0 and np.isnan(fit["inside_bid_ask"])
    table = compare_table({"interp": out})
    assert list(table.columns) == ["method", "n_used", "rmse_iv", "n_bid_ask", "inside_bid_ask"]
    assert table.loc[0, "method"] == "interp" and table.loc[0, "n_used"] == used.sum()
