"""The chain workflow and the CLI's --chain: every row back, query rows answered, marks written."""
import numpy as np
import pandas as pd
import pytest

from core.chain.workflow import query_rows, repair_chain, write_chain_outputs
from core.cli import main as cli_main


@pytest.fixture(scope="module")
def frame_with_queries(small_frame):
    df = small_frame[["T", "k", "iv", "bid", "ask"]].copy()
    T = np.sort(df["T"].unique())
    queries = pd.DataFrame({"T": [0.5 * (T[1] + T[2]), T[-1] * 2, T[0], 0.5 * (T[1] + T[2])],
                            "k": [0.0, 0.0, 0.0, -3.0], "iv": np.nan, "bid": np.nan, "ask": np.nan})
    return pd.concat([df, queries], ignore_index=True), len(df)


def test_query_rows_get_values_sd_and_marks(frame_with_queries):
    df, n = frame_with_queries
    out = repair_chain(df, method="svi_fit")
    q = out.quote_table
    assert list(q["row"]) == list(range(1, len(df) + 1))
    assert q["is_query"].sum() == 4 and q["is_query"].iloc[n:].all()
    assert np.isfinite(q["iv_repaired"]).all()
    assert list(q["extrapolated"].iloc[n:]) == [False, True, False, True]
    assert (q.loc[q["is_query"], "status"] == "query").all()
    assert not q.loc[~q["is_query"], "extrapolated"].any()
    assert out.dense.ok
    # a query is not a quote: the surface's quoted expiries and strikes come from the quotes only
    assert out.surface.expiries.size == np.unique(df["T"].iloc[:n].round(9)).size


def test_query_rows_need_a_valid_point_within_the_chain_domain():
    table = pd.DataFrame({"T": [0.1, np.nan, 0.2, 0.1, 0.1, 1e-9, 0.1],
                          "k": [0.0, 0.0, 0.1, 1e300, -6.0, 0.0, 0.0], "iv": [np.nan] * 2 + [0.2] + [np.nan] * 4,
                          "status": ["dropped", "dropped", "used", "dropped", "dropped", "dropped", "dropped"],
                          "reason": ["missing iv"] * 6 + ["non-numeric value in iv (e.g. '42%')"]})
    asked, beyond = query_rows(table)
    assert list(asked) == [True, False, False, False, False, False, False]
    # a valid point beyond the bounds (k = 1e300, |k| > 5, T under 5 minutes) is not answered;
    # a cell the importer could not read is a bad quote, not a question
    assert list(beyond) == [False, False, False, True, True, True, False]


def test_queries_beyond_the_domain_and_unreadable_cells_get_no_value(frame_with_queries):
    df, n = frame_with_queries
    extra = pd.DataFrame({"T": [0.5, 0.5, 0.5], "k": [1e300, 0.0, 0.0], "iv": [np.nan, "42%", np.nan],
                          "bid": np.nan, "ask": np.nan})
    rows = pd.concat([df.astype({"iv": object}), extra], ignore_index=True)
    out = repair_chain(rows, method="svi_fit", stale=False)
    q = out.quote_table
    far, text, fine = q.iloc[-3], q.iloc[-2], q.iloc[-1]
    assert not far["is_query"] and np.isnan(far["iv_repaired"]) and "beyond the chain's domain" in far["reason"]
    assert not text["is_query"] and text["status"] == "dropped" and text["reason"].startswith("non-numeric")
    assert fine["is_query"] and np.isfinite(fine["iv_repaired"])
    # answered queries are not counted as dropped in the summary; the unreadable cell is
    summary = "\n".join(out.summary_lines())
    assert "missing iv" not in summary and "non-numeric" in summary
    assert "dropped, query beyond the chain's domain" in summary
    assert f"{int(q['is_query'].sum())} query row(s) answered" in summary


def test_outputs_and_the_cli(tmp_path, frame_with_queries):
    df, _ = frame_with_queries
    src = tmp_path / "q.csv"
    df.to_csv(src, index=False)
    assert cli_main(["repair", str(src), "--chain", "--method", "svi_fit", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    quotes = pd.read_csv(tmp_path / "o" / "quotes.csv")
    assert {"row", "iv_repaired", "iv_quote_model", "sd_repaired", "extrapolated", "is_query"} <= set(quotes.columns)
    grid = pd.read_csv(tmp_path / "o" / "grid.csv")
    assert {"T", "k", "iv", "extrapolated"} <= set(grid.columns) and grid["extrapolated"].any()
    assert (tmp_path / "o" / "params.csv").exists() and (tmp_path / "o" / "dense_check.json").exists()
    # svi_fit without --chain is refused with one line
    assert cli_main(["repair", str(src), "--method", "svi_fit", "--out", str(tmp_path / "p")]) != 0


def test_write_refuses_a_file_as_folder(tmp_path, frame_with_queries):
    df, _ = frame_with_queries
    out = repair_chain(df.iloc[:-4], method="svi_fit")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_chain_outputs(out, tmp_path / "f")


def test_chain_repair_scores_stale_quotes(frame_with_queries):
    """A quote moved far off its smile is flagged by the chain stale check; query rows get no score."""
    df, n = frame_with_queries
    moved = df.copy()
    T = np.sort(moved["T"].iloc[:n].unique())
    rows = np.flatnonzero((moved["T"] == T[len(T) // 2]).to_numpy())
    target = rows[len(rows) // 2]                       # mid-smile: it has neighbours on both sides
    moved.loc[target, ["iv", "bid", "ask"]] = np.nan    # the moved quote carries no spread of its own
    moved.loc[target, "iv"] = df.loc[target, "iv"] + 0.08
    q = repair_chain(moved, method="svi_fit").quote_table
    assert bool(q["stale_flag"].iloc[target]) and q["stale_score"].iloc[target] > 0
    assert q["stale_flag"].iloc[:n].mean() < 0.1        # the rest of a clean chain stays mostly unflagged
    assert q.loc[q["is_query"], "stale_score"].isna().all() and not q.loc[q["is_query"], "stale_flag"].any()
    plain = repair_chain(moved, method="svi_fit", stale=False).quote_table
    assert "stale_flag" not in plain.columns


def test_default_chain_method_is_svi_gp_and_answers_queries(frame_with_queries):
    df, n = frame_with_queries
    out = repair_chain(df)
    assert out.method == "svi_gp" and out.dense.ok
    q = out.quote_table
    assert np.isfinite(q["iv_repaired"]).all() and np.isfinite(q["sd_repaired"]).all()
    # the 95 % interval: its own calibrated multiple of the sd, wider than one sd
    assert (q["half_width_95"] > q["sd_repaired"]).all()
    # the query between two expiries gets its own slice (fixed-z mix of its neighbours)
    assert out.surface.expiries.size == np.unique(df["T"].iloc[:n].round(9)).size + 1
    # the summary says how the smiles were continued beyond the quotes (core.chain.wing)
    wing = [line for line in out.summary_lines() if line.startswith("wing beyond the quotes")]
    a_put, a_call = out.surface.wing_alpha
    assert len(wing) == 1 and f"puts {a_put:.2f}" in wing[0] and f"calls {a_call:.2f}" in wing[0]
    kept = sum("+wing" in kind for kind in out.params["kind"])
    assert f"continued on {kept} of {len(out.params)} expiries" in wing[0]


@pytest.mark.parametrize("method, warned", [("cnn", "not recommended"), ("vae", "not recommended"),
                                            ("best", "not calibrated"), ("svi_gp", None), ("interp", None)])
def test_methods_that_mislead_on_chains_say_so(frame_with_queries, method, warned):
    """The learned grid models did not reproduce real chains, and best's intervals (from its synthetic
    prior) under-covered held-out real quotes: the chain path says so in its summary; svi_gp and the
    plain baselines carry no such line."""
    from core.chain.methods import get_chain_method

    df, n = frame_with_queries
    lines = [line for line in repair_chain(df.iloc[:n], method=method).summary_lines() if line.startswith("warning:")]
    text = get_chain_method(method).warning
    if warned is None:
        assert text is None and not lines
    else:
        assert warned in text and lines == [f"warning: {text}"]


def test_rows_beyond_the_chain_domain_are_dropped_with_their_reason(frame_with_queries):
    from core.quotes.quoteset import MAX_CHAIN_EXPIRIES, QuoteError

    df, n = frame_with_queries
    quotes = df.iloc[:n]
    bad = pd.DataFrame({"T": [1e-9, 0.5, 0.5, 548.0], "k": [0.0, -20.0, 20.0, 0.0], "iv": 0.2,
                        "bid": np.nan, "ask": np.nan})
    out = repair_chain(pd.concat([quotes, bad], ignore_index=True), method="svi_fit", stale=False)
    q = out.quote_table.iloc[n:]
    assert (q["status"] == "dropped").all() and q["iv_repaired"].isna().all()
    assert [r.split(" (")[0] for r in q["reason"]] == ["T below 1e-05 years", "|k| above 5", "|k| above 5",
                                                        "T above 30 years"]
    # the surface is the quotes' alone: the same expiries and a quoted k range within the quotes'
    assert out.surface.expiries.size == np.unique(quotes["T"].round(9)).size and out.dense.ok
    assert out.surface.k_domain[1] < 5
    # only such rows: one line naming why
    with pytest.raises(QuoteError, match="no usable quotes.*T below 1e-05 years"):
        repair_chain(pd.DataFrame({"T": [1e-9] * 6, "k": np.linspace(-0.1, 0.1, 6), "iv": 0.2}))
    # several chains in one file
    many = pd.DataFrame({"T": np.repeat(np.linspace(0.05, 2.0, MAX_CHAIN_EXPIRIES + 1), 2),
                         "k": np.tile([-0.05, 0.05], MAX_CHAIN_EXPIRIES + 1), "iv": 0.2})
    with pytest.raises(QuoteError, match=f"span {MAX_CHAIN_EXPIRIES + 1} expiries"):
        repair_chain(many)


def test_a_small_chain_gets_finite_intervals():
    """10 quotes: split conformal has no 95 % quantile below 19 scores, and the half-width was inf;
    the sd's normal multiples apply instead."""
    k = np.array([-0.3, -0.1, 0.0, 0.1, 0.3])
    df = pd.DataFrame({"T": np.repeat([0.25, 0.5], 5), "k": np.tile(k, 2),
                       "iv": np.r_[0.22 - 0.1 * k + 0.2 * k**2, 0.21 - 0.08 * k + 0.15 * k**2]})
    q = repair_chain(df, stale=False).quote_table
    assert np.isfinite(q["half_width_95"]).all() and (q["half_width_95"] > 0).all()
    assert (q["half_width_95"] > q["sd_repaired"]).all()


def test_prices_of_no_market_are_dropped_not_a_singular_matrix():
    """Every bid 1e-12 and ask 2e-12 (F = 100): the at-the-money ones are vols of 1e-14, dropped
    as no market's; the rest is repaired (the whole message was once "Singular matrix")."""
    K = np.arange(70.0, 131.0, 5.0)
    rows = [{"T": T, "strike": s, "forward": 100.0, "discount": 1.0, "type": "put" if s < 100 else "call",
             "bid": 1e-12, "ask": 2e-12} for T in (0.25, 0.5, 1.0) for s in K]
    out = repair_chain(pd.DataFrame(rows), stale=False)
    q = out.quote_table
    atm = q["strike"] == 100.0
    assert (q.loc[atm, "status"] == "dropped").all() and q.loc[atm, "reason"].str.contains("below 0.001").all()
    assert out.dense.ok and np.isfinite(q.loc[q["status"] == "used", "iv_repaired"]).all()


def test_the_cli_does_not_pass_a_surface_that_fails_the_dense_check(tmp_path, frame_with_queries, monkeypatch, capsys):
    """Arbitrage-free by construction; should the check fail anyway, the outputs are written for a
    look but the exit code is 3 with one line (it was 0: k = +-20 quotes once broke the check)."""
    import core.chain.workflow as workflow
    from core.engine.dense_check import DenseReport

    failed = DenseReport(n_butterfly=2, n_calendar=1, n_points=100, T=np.zeros(0), k=np.zeros(0))
    monkeypatch.setattr(workflow, "dense_from_table", lambda surface, grid: failed)
    df, n = frame_with_queries
    path = tmp_path / "q.csv"
    df.iloc[:n].to_csv(path, index=False)
    code = cli_main(["repair", str(path), "--chain", "--method", "svi_fit", "--no-stale", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and err[-1].startswith("error: the repaired surface fails the dense arbitrage check (2 butterfly, "
                                            "1 calendar, 0 non-finite of 100 points)")
    assert (tmp_path / "o" / "dense_check.json").exists()


def test_a_gross_outlier_is_left_out_of_the_fit_and_flagged(frame_with_queries):
    """One quote at 1 % vol among 20 % ones once pulled its slice 14 vol points down at the money
    and, through the calendar order, every shorter expiry with it."""
    from core.chain.workflow import GROSS_Z

    df, n = frame_with_queries
    quotes = df.iloc[:n].copy()
    T = np.sort(quotes["T"].unique())
    at = quotes.index[(quotes["T"] == T[len(T) // 2])][np.argmin(np.abs(quotes.loc[quotes["T"] == T[len(T) // 2], "k"]))]
    clean = repair_chain(quotes, method="svi_fit").quote_table
    assert (clean["status"] == "used").all()             # no clean quote of the chain is left out
    half = 0.5 * (quotes.loc[at, "ask"] - quotes.loc[at, "bid"])
    quotes.loc[at, ["iv", "bid", "ask"]] = [0.01, 0.01 - half, 0.01 + half]
    out = repair_chain(quotes, method="svi_fit")
    q = out.quote_table
    assert q.loc[at, "status"] == "dropped" and q.loc[at, "stale_flag"] and q.loc[at, "reason"].startswith("stale: -")
    assert float(q.loc[at, "reason"].split()[1]) < -GROSS_Z
    others = q.index != at
    # every other quote is repaired exactly as if the bad one were not in the file, and flagged
    # as on the clean chain; with it in the fit, its neighbours would sit far below their quotes
    without = repair_chain(quotes.drop(index=at), method="svi_fit").quote_table
    np.testing.assert_allclose(q.loc[others, "iv_repaired"].to_numpy(), without["iv_repaired"].to_numpy(), atol=1e-12)
    assert (q.loc[others, "stale_flag"] == clean.loc[others, "stale_flag"]).all()
    assert np.abs(q.loc[others, "iv_repaired"] - clean.loc[others, "iv_repaired"]).max() < 0.001
    assert any("left out of the fit: 1" in line for line in out.summary_lines())


def test_quotes_below_the_surface_floor_are_said():
    from core.chain.build import CHAIN_FLOOR_IV

    k = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    df = pd.DataFrame({"T": np.repeat([0.25, 0.5], 5), "k": np.tile(k, 2), "iv": 0.5 * CHAIN_FLOOR_IV})
    lines = repair_chain(df, method="svi_fit", stale=False).summary_lines()
    assert (f"warning: 10 quote(s) below the chain surface's floor ({100 * CHAIN_FLOOR_IV:g} % vol, more within minutes of "
            "expiry): it does not follow them there") in lines
    df["iv"] = 0.2
    assert not any("floor" in line for line in repair_chain(df, method="svi_fit", stale=False).summary_lines())


def test_a_discount_implying_an_absurd_rate_is_dropped():
    """A discount of 1.5 at a quarter of a year is a rate of -162 %: a wrong column, dropped with
    its reason (it was used, and moved every vol)."""
    from core.engine.black import black_price

    K = np.arange(80.0, 121.0, 5.0)
    rows = []
    for T, D in ((0.25, 1.5), (0.5, 0.98), (1.0, 0.96)):
        for s in K:
            call = s >= 100.0
            p = float(black_price(100.0, s, T, 0.2, call, 0.98 if D > 1 else D))
            rows.append({"T": T, "strike": s, "forward": 100.0, "discount": D, "type": "call" if call else "put",
                         "bid": 0.99 * p, "ask": 1.01 * p})
    q = repair_chain(pd.DataFrame(rows), method="svi_fit", stale=False).quote_table
    first = q["T"] == 0.25
    assert (q.loc[first, "status"] == "dropped").all()
    assert q.loc[first, "reason"].str.startswith("discount implies a rate beyond 100 % a year").all()
    assert (q.loc[~first, "status"] == "used").all()


def test_one_expiry_in_days_among_years_is_said():
    k = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    df = pd.DataFrame({"T": np.repeat([0.25, 0.5, 30.0], 5), "k": np.tile(k, 3), "iv": 0.2})
    lines = repair_chain(df, method="svi_fit", stale=False).summary_lines()
    assert "warning: the longest expiry (T = 30) is 60 times the next (0.5): days given as years?" in lines
    df["T"] = np.repeat([0.25, 0.5, 5.0], 5)        # a 5-year expiry beside 6 months is a real chain's
    assert not any("days given as years" in x for x in repair_chain(df, method="svi_fit", stale=False).summary_lines())


def test_the_summary_counts_every_row_once_on_a_matrix_layout(tmp_path):
    """A matrix layout holds one table row per expiry on each line: a query (an empty cell) beside
    a dropped cell on the same line must leave the drop in the count (it once vanished)."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / "fixtures" / "layouts" / "quantlib_matrix.txt").read_text().splitlines()
    numeric = [i for i, line in enumerate(lines) if line.strip() and line.strip()[0].isdigit()]
    i = numeric[len(numeric) // 2]
    cells = lines[i].split(",") if "," in lines[i] else lines[i].split()
    sep = "," if "," in lines[i] else " "
    cells[1] = "9.5"                          # a vol of 950 % in the first expiry's column
    lines[i] = sep.join(cells)
    path = tmp_path / "m.txt"
    path.write_text("\n".join(lines) + "\n")
    out = repair_chain(path, method="svi_fit", stale=False)
    q, report = out.quote_table, out.quotes.report
    bad = q[(q["status"] == "dropped")]
    assert len(bad) == 1 and report.n_dropped == 1 and list(report.dropped.values())[0] == bad["row"].tolist()
    n_query = int(q["is_query"].sum())
    assert q.loc[q["row"] == bad["row"].iloc[0], "is_query"].any()      # a query on the dropped cell's line
    assert report.n_used + report.n_skipped + report.n_dropped + n_query == len(q)
    assert f"{n_query} query row(s) answered" in "\n".join(out.summary_lines())


def test_a_zero_dte_discount_is_no_absurd_rate():
    """Minutes to expiry, the discount to the premium's settlement a day later: a fair 5 % rate,
    not the 240 % that -ln(D) / T reads over 30 minutes."""
    from core.engine.black import black_price

    K = np.arange(90.0, 111.0, 2.5)
    rows = []
    for T in (30 / 525600, 0.1, 0.5):
        D = float(np.exp(-0.05 * max(T, 1 / 365)))
        for s in K:
            call = s >= 100.0
            p = float(black_price(100.0, s, T, 0.3, call, D))
            rows.append({"T": T, "strike": s, "forward": 100.0, "discount": D, "type": "call" if call else "put",
                         "bid": 0.99 * p, "ask": 1.01 * p})
    q = repair_chain(pd.DataFrame(rows), method="svi_fit", stale=False).quote_table
    assert not q["reason"].astype(str).str.contains("discount implies").any()
