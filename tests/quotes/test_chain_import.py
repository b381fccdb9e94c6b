"""The chain importer: drop reasons counted, query rows, the full range kept, and the input holes
of the adversarial issue (timezones, date formats, percent vols, wide lines, misleading messages)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.quotes.chain_import import import_chain, import_laid_out
from core.quotes.dates import parse_one_date
from core.quotes.read import quotes_from_frame

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "layouts"


def _yfinance() -> pd.DataFrame:
    return pd.read_csv(FIXTURES / "yfinance.csv")


def test_each_drop_reason_is_counted():
    df = _yfinance()
    otm_call = df.index[(df["type"] == "call") & (df["strike"] > 5100)]
    df.loc[otm_call[:2], "bid"] = 0.0                                   # one-sided
    df.loc[otm_call[2], ["bid", "ask"]] = [10.0, 9.0]                   # crossed
    chain = import_laid_out(df, "y.csv")
    drops = chain.report.drops
    assert drops["one-sided or no market (bid or ask missing or zero)"] == 2
    assert drops["crossed (bid above ask)"] == 1
    assert drops["in the money (the out-of-the-money option at the strike carries the vol)"] == len(df) // 2
    assert chain.report.n_used == len(df) // 2 - 3
    reasons = chain.table.loc[chain.table["status"] == "dropped", "reason"]
    assert reasons.value_counts().to_dict() == drops


def _iv_rows(T, k, iv) -> pd.DataFrame:
    return pd.DataFrame({"T": T, "k": k, "forward": 100.0, "iv": iv})


def test_full_range_is_kept_and_queries_are_not_quotes():
    T = np.array([1 / 365, 1 / 365, 5.0, 5.0, 0.5])
    k = np.array([-1.5, 0.0, -1.5, 0.8, 0.0])
    iv = np.array([0.9, 0.3, 0.35, 0.2, np.nan])                     # the last row asks for a value
    chain = import_laid_out(_iv_rows(T, k, iv), "q.csv")
    status = chain.table["status"].tolist()
    assert status == ["used"] * 4 + ["query"] and chain.report.n_query == 1
    np.testing.assert_allclose(chain.arrays()["k"], k[:4])


def test_timezone_suffix_next_to_a_plain_date():
    df = pd.DataFrame({"expiry": ["2025-06-20T00:00:00+00:00", "2025-09-19T00:00:00+00:00"] * 2,
                       "valuation_date": "2025-03-14", "strike": [95.0, 95.0, 105.0, 105.0], "forward": 100.0,
                       "iv": 0.2})
    chain = import_laid_out(df, "tz.csv")
    np.testing.assert_allclose(chain.used["T"], [98 / 365, 189 / 365] * 2)
    reverse = df.assign(expiry=["2025-06-20", "2025-09-19"] * 2, valuation_date="2025-03-14T00:00:00+00:00")
    np.testing.assert_allclose(import_laid_out(reverse, "tz.csv").used["T"], [98 / 365, 189 / 365] * 2)


def test_date_formats_read_the_same_in_a_file_and_as_an_option():
    assert parse_one_date("20250314") == pd.Timestamp("2025-03-14")
    assert parse_one_date("14/03/2025") == pd.Timestamp("2025-03-14")
    with pytest.raises(ValueError, match="ambiguous"):
        parse_one_date("04/03/2025")
    df = pd.DataFrame({"expiry": ["2025-06-20", "2025-09-19"] * 2, "valuation_date": "04/03/2025",
                       "strike": [95.0, 95.0, 105.0, 105.0], "forward": 100.0, "iv": 0.2})
    with pytest.raises(ValueError, match="ambiguous"):
        import_laid_out(df, "d.csv")
    with pytest.raises(ValueError, match="ambiguous"):
        import_laid_out(df.drop(columns="valuation_date"), "d.csv", valuation_date="04/03/2025")


def test_low_vol_chain_in_percent_is_read_as_percent_and_said():
    iv_pct = np.linspace(1.5, 5.0, 6)
    chain = import_laid_out(_iv_rows([0.5, 0.5, 0.5, 1.0, 1.0, 1.0], [-0.1, 0, 0.1] * 2, iv_pct), "p.csv")
    np.testing.assert_allclose(chain.used["iv"], iv_pct / 100)
    assert any("percent" in note for note in chain.report.notes)


def test_bid_ask_prices_beside_a_vol_column_are_recomputed_not_taken_as_vols():
    df = pd.read_csv(FIXTURES / "spy_like_prices.csv")
    chain = import_laid_out(df, "spy.csv", rate=0.04)
    assert chain.report.kind == "price" and chain.used["iv"].max() < 2.0
    # without a type column there is nothing to price with: refused, with the reason
    with pytest.raises(ValueError, match="do not bracket the iv column"):
        import_laid_out(df.drop(columns="option_type"), "spy.csv")


def test_wide_line_is_refused_fast():
    data = ("T,k,iv," + ",".join(f"c{i}" for i in range(300_000)) + "\n").encode()
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cap"):
        import_chain(data, name="wide.csv")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("data,pattern", [
    ("T,k,forward,iv\n0.5,0,100,0.2\n1,0,100,0.2\n".encode("utf-16"), None),
    (b'{"T": [0.5], "k": [0], "iv": [0.2]}', "holds JSON"),
    (b"<html><body><table></table></body></html>", "HTML"),
    (b"T,k,forward,iv\n0.5,0,100,\"0,25\"\n", "decimal comma"),
    # a column mixing 25% and 0.25 (one all in 25% is read as percent: test_layouts)
    (b"T,k,forward,iv\n0.5,0,100,25%\n1,0,100,abc\n", "percent sign"),
])
def test_messages_name_the_real_problem(data, pattern):
    if pattern is None:                       # UTF-16 with a byte-order mark is read, not "binary"
        assert import_chain(data, name="u16.csv").report.n_used == 2
        return
    with pytest.raises(ValueError, match=pattern) as info:
        import_chain(data, name="bad.csv")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name,options", [("yfinance.csv", []), ("cboe_quotedata.csv", []),
                                          ("spy_like_prices.csv", ["--rate", "0.04"])])
def test_cli_repairs_vendor_layouts(tmp_path, capsys, name, options):
    """The layouts the issue found refused or misread go through the CLI: read, repaired, reported."""
    from core.cli import main

    code = main(["repair", str(FIXTURES / name), "--method", "interp", "--no-stale", "--out", str(tmp_path / "out"),
                 *options])
    out = capsys.readouterr()
    assert code == 0, out.err
    quotes = pd.read_csv(tmp_path / "out" / "quotes.csv")
    used = quotes[quotes["status"] == "used"]
    assert len(used) > 10 and used["iv_repaired"].between(0.05, 2.0).all()
    assert "note:" in out.out


def test_report_json_carries_the_parity_forwards(tmp_path, capsys):
    import json

    from core.cli import main

    assert main(["repair", str(FIXTURES / "ivydb.csv"), "--method", "interp", "--no-stale", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "out" / "report.json").read_text())["report"]
    assert report["layout"] == "ivydb" and len(report["forwards"]) == 4
    for row in report["forwards"]:
        # IvyDB gives forward_price: it is used; parity's own forward is reported beside it
        assert row["source"] == "parity" and abs(row["parity_forward"] / row["forward"] - 1) < 1e-8
        assert abs(row["rate"] - 0.04) < 1e-6


def test_calls_frame_alone_takes_forwards_from_spot_and_rate():
    """One yfinance frame (calls only) has no parity: spot + rate + dividend yield give F and D."""
    calls = _yfinance()
    calls = calls[calls["type"] == "call"].drop(columns=["stockPrice"])
    with pytest.raises(ValueError, match="no forward for this expiry"):
        import_laid_out(calls, "calls.csv")
    chain = import_laid_out(calls, "calls.csv", spot=5000.0, rate=0.04, dividend_yield=0.015)
    assert set(chain.forwards["source"]) == {"spot+rate"}
    T = chain.used["T"].to_numpy()
    np.testing.assert_allclose(chain.used["forward"], 5000.0 * np.exp(0.025 * T))
    np.testing.assert_allclose(chain.used["discount"], np.exp(-0.04 * T))
    assert (chain.used["k"] >= 0).all()               # calls above the forward only: OTM
    # a percent typed for a decimal, or a spot that is no price, is refused in one line naming it
    # (a rate of 4 gave forwards 400 times the spot and vols of 100-350 %)
    for kwargs, message in (({"spot": 5000.0, "rate": 4.0}, "rate 4 is 400 % a year; give it as a decimal"),
                            ({"spot": 0.0, "rate": 0.04}, "spot 0.0 is not a positive number"),
                            ({"spot": float("nan"), "rate": 0.04}, "spot nan is not a positive number"),
                            ({"spot": 5000.0, "rate": float("inf")}, "rate inf is not a finite number"),
                            ({"spot": 5000.0, "rate": 0.04, "dividend_yield": -2.0}, "dividend yield -2 is -200 %")):
        with pytest.raises(ValueError, match=message):
            import_laid_out(calls, "calls.csv", **kwargs)
        with pytest.raises(ValueError, match=message):
            quotes_from_frame(calls, "calls.csv", **kwargs)
