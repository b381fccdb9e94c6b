"""The "Your quotes" page in streamlit's AppTest: both samples, flags, downloads, every error path."""
import json
import re
from pathlib import Path

import pytest

from tests.app.test_app import same_content

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/4_quotes.py"
pytestmark = pytest.mark.skipif(not (ROOT / "app.py").exists() or not (ROOT / "ui" / "style.py").exists(),
                                reason="needs the dashboard frame (app.py, ui/)")
TIMEOUT = 300


def open_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    return at


def clean(at):
    assert not at.exception, [e.value for e in at.exception]


def charts(at) -> dict:
    return {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def frames(at) -> dict:
    """The page's tables by what they are (AppTest does not expose dataframe keys)."""
    out = {}
    for df in at.dataframe:
        value = df.value
        if {"status", "reason", "count", "rows"} <= set(value.columns):
            out["report"] = value
        elif "stale_score" in value.columns:
            out["flagged"] = value
        elif "row" in value.columns and "status" in value.columns:
            out["preview"] = value
    return out


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_iv_sample_loads_in_one_click_with_report_views_flags_and_downloads():
    from core.quotes.workflow import repair_quotes

    at = open_page()
    clean(at)
    assert not at.error
    expected = repair_quotes(ROOT / "samples" / "quotes_iv.csv", method="best")
    m = metrics(at)
    assert m["rows read"] == f"{expected.report.n_rows:,}" and m["used"] == f"{expected.report.n_used:,}"
    assert m["outside the grid"] == f"{expected.report.n_outside:,}"
    figs = charts(at)
    assert set(figs) == {"quotes_grid", "quotes_smile", "quotes_term", "quotes_residuals", "quotes_fan", "quotes_atm",
                         "quotes_density", "quotes_compare_smiles", "quotes_grid_narrow"}
    assert same_content(figs["quotes_grid"], figs["quotes_grid_narrow"])   # stacked for a phone (issue 12)
    assert sum(t["type"] == "heatmap" and "wash" not in t["name"] for t in figs["quotes_grid"]["data"]) == 3
    names = [t.get("name") for t in figs["quotes_smile"]["data"]]
    # Best's band is its conformal one, as in the explorer (issue 12, item 7), not ± 2 sd.
    assert "Best repair" in names and "quotes (mid, bid/ask)" in names and "Best conformal 95 % band" in names
    tables = frames(at)
    assert "report" in tables and "flagged" in tables and "preview" in tables
    assert set(tables["report"]["status"]) == {"outside"} and tables["report"]["count"].sum() == expected.report.n_outside
    assert expected.n_flagged > 0 and len(tables["flagged"]) == expected.n_flagged
    assert any(f"**{expected.n_flagged}** of" in md.value for md in at.markdown)
    assert len(at.get("download_button")) == 7


def test_price_sample_with_dates_and_cnn_sd_panel():
    at = open_page()
    at.radio(key="quotes_source").set_value("Sample: prices with dates").run()
    clean(at)
    assert not at.error
    m = metrics(at)
    assert m["dropped"] == "2" and int(m["set aside by rule"].replace(",", "")) > 1000
    report = frames(at)["report"]
    assert "price below intrinsic value (no-arbitrage lower bound)" in set(report["reason"])
    at.selectbox(key="quotes_method").set_value("cnn").run()
    clean(at)
    grid = charts(at)["quotes_grid"]
    assert sum(t["type"] == "heatmap" and "wash" not in t["name"] for t in grid["data"]) == 3  # quotes, repair, sd
    assert any("predictive sd" in a["text"] for a in grid["layout"]["annotations"])


@pytest.mark.parametrize("case", ["empty file", "wrong columns", "vols above 5 after percent reading", "single expiry",
                                  "dates in the wrong order", "corrupt parquet", "three quotes"])
def test_bad_files_end_in_one_st_error(monkeypatch, case):
    import re

    from tests.quotes.quote_cases import MALFORMED

    data, name, pattern = MALFORMED[case]
    monkeypatch.setattr("core.quotes.workflow.sample_bytes", lambda label: (data, name))
    at = open_page()
    clean(at)
    shown = re.sub(r"\\(.)", r"\1", at.error[0].value)   # the page escapes markdown (ui.text.plain)
    assert len(at.error) == 1 and re.search(pattern, shown), at.error[0].value
    assert "\n" not in at.error[0].value
    assert not at.get("plotly_chart")


def test_corrupt_weights_message_and_baselines_still_work(monkeypatch):
    from core.repairers.weights import WeightsError

    def broken(path):
        raise WeightsError(f"weights file {path} is corrupt or not a PyTorch state dict: bad magic")

    monkeypatch.setattr("core.repairers.cnn._cached_cnn", broken)
    at = open_page()
    at.selectbox(key="quotes_method").set_value("cnn").run()
    clean(at)
    assert len(at.error) == 1 and "corrupt" in at.error[0].value and "baselines" in at.error[0].value
    at.selectbox(key="quotes_method").set_value("svi").run()
    clean(at)
    assert not at.error and "quotes_grid" in charts(at)


def test_vendor_layout_loads_and_states_its_decisions(monkeypatch):
    """A yfinance dump (refused before the layouts work) loads; the page says what it decided."""
    data = (ROOT / "tests" / "fixtures" / "layouts" / "yfinance.csv").read_bytes()
    monkeypatch.setattr("core.quotes.workflow.sample_bytes", lambda label: (data, "yfinance.csv"))
    at = open_page()
    at.selectbox(key="quotes_method").set_value("interp").run()
    clean(at)
    assert not at.error
    # the page escapes markdown in text that quotes the file (ui.text.plain); read it unescaped
    infos = re.sub(r"\\(.)", r"\1", " | ".join(i.value for i in at.info))
    assert "put-call parity" in infos and "bid/ask are option prices" in infos
    assert any("yfinance layout" in c.value for c in at.caption)
    assert "quotes_grid" in charts(at)


def small_chain_csv() -> bytes:
    """A small implied-vol chain from core's synthetic chain generator (SABR-event surface, five
    monthly expiries, a coarse strike ladder), as a user's file: T, strike, forward, bid, ask, iv."""
    from core.synth.chains import ChainSpec, make_chain, surface_function

    spec = ChainSpec(weeklies=0, monthlies=5, horizon_years=1.0, strike_step_factor=2.0)
    chain = make_chain(surface_function("sabr_event", 4242), spec, seed=4243)
    return chain[["T", "strike", "forward", "bid", "ask", "iv"]].round(6).to_csv(index=False).encode()


def test_method_comparison_on_an_uploaded_chain():
    """Issue 12: several methods compared on the same uploaded chain, with its bid-ask. The file goes
    through the page's own st.file_uploader (AppTest drives it), not a sample."""
    from core.quotes.workflow import compare_table, repair_quotes
    from ui.numbers import VOL_UNIT
    from ui.style import method_label

    data = small_chain_csv()
    chosen = ["svi", "interp", "best"]
    at = open_page()
    at.radio(key="quotes_source").set_value("Upload a file").run()
    at.toggle(key="quotes_stale").set_value(False)   # the comparison runs without stale flags anyway
    at.file_uploader(key="quotes_file").set_value(("my_chain.csv", data, "text/csv")).run()
    clean(at)
    assert not at.error
    # the page escapes markdown in text that quotes the file (ui.text.plain); read it unescaped
    assert any(re.sub(r"\\(.)", r"\1", c.value).startswith("my_chain.csv:") for c in at.caption)
    n_rows = len(data.splitlines()) - 1
    assert metrics(at)["rows read"] == f"{n_rows:,}", "the uploaded file, not a sample"
    at.multiselect(key="quotes_compare").set_value(chosen).run()
    clean(at)
    assert not at.warning, [w.value for w in at.warning]
    # The figure: each chosen method's smile over the quotes with their bid/ask error bars.
    traces = charts(at)["quotes_compare_smiles"]["data"]
    assert {method_label(m) for m in chosen} <= {t["name"] for t in traces}
    quotes = next(t for t in traces if t["name"] == "quotes (mid, bid/ask)")
    assert quotes["error_y"]["type"] == "data", "bid/ask drawn"
    # The table: one row per chosen method, its RMSE to mid and its bid-ask inside share, as core
    # computes them on the same bytes.
    shown = next(df.value for df in at.dataframe if "inside bid–ask" in df.value.columns).set_index("method")
    assert list(shown.index) == [method_label(m) for m in chosen]
    expected = compare_table({m: repair_quotes(data, method=m, name="my_chain.csv", stale=False)
                              for m in chosen}).set_index("method")
    for m in chosen:
        row, want = shown.loc[method_label(m)], expected.loc[m]
        assert row["with bid–ask"] == want["n_bid_ask"] > 0
        assert row["inside bid–ask"] == pytest.approx(100 * want["inside_bid_ask"])   # shown in percent
        assert row[f"RMSE to mid ({VOL_UNIT})"] == pytest.approx(100 * want["rmse_iv"])   # in vol points
        assert 0 <= row["inside bid–ask"] <= 100
