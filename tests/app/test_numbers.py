"""Issue 12: numbers formatted one way. ui.numbers itself, and every table of every page as the
app renders it (AppTest): one number of decimals per table, and every vol column in vol points."""
import json
import re

import pandas as pd
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT
from ui import numbers

PAGES = [None, "pages/1_explorer.py", "pages/2_benchmark.py", "pages/3_diagnostics.py", "pages/4_quotes.py"]
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d[\d,]*\.(\d+)(?![\w.])")   # a number with decimals, not a date or a hash
# Column names of vol-valued quantities: such a column must say it is in vol points.
VOL_NAME = re.compile(r"(^|\W)(iv|rmse|residual|sd|width)", re.IGNORECASE)


def test_the_formatter():
    assert numbers.vol(0.0088) == "0.88" and numbers.vol(0.2153) == "21.53"
    assert numbers.vol(-0.0012, sign=True) == "-0.12" and numbers.vol(0.0012, sign=True) == "+0.12"
    assert numbers.vol_se(0.0138, 0.00083) == "1.38 ± 0.08" and numbers.vol_se(float("nan"), 0.1) == numbers.MISSING
    assert numbers.rate(0.0718) == "7.18 %" and numbers.ratio(0.9471) == "0.95"
    assert numbers.vol(None) == numbers.vol(float("inf")) == numbers.MISSING
    assert numbers.printf(numbers.RATE) == "%.2f %%" and numbers.printf(numbers.VOL, 4) == "%.4f"
    frame = pd.DataFrame({"name": ["a"], "x": [0.01], "share": [0.5], "n": [1200]})
    text = numbers.text_frame(frame, {"x": numbers.VOL, "share": numbers.RATE, "n": numbers.COUNT})
    assert text.iloc[0].tolist() == ["a", "1.00", "50.00 %", "1,200"]
    assert numbers.scaled(frame, {"x": numbers.VOL, "share": numbers.RATE}).iloc[0].tolist()[1:3] == [1.0, 50.0]


def decimals_in(cells) -> set:
    return {len(m.group(1)) for cell in cells for m in DECIMAL.finditer(str(cell))}


def table_text(table) -> pd.DataFrame:
    """What st.table shows: a Styler's display values, else the frame itself."""
    arrow = table.proto.arrow_data
    if arrow.styler.display_values:
        return dataframe_util.convert_arrow_bytes_to_pandas_df(arrow.styler.display_values)
    return table.value


def markdown_tables(at) -> list:
    """The number tables drawn as markdown (the landing page's validation and conformal tables);
    the manifest's facts table holds identifiers and settings, not numbers of one kind."""
    out = []
    for md in at.markdown:
        rows = [line for line in md.value.splitlines() if line.startswith("|")]
        if len(rows) > 2 and not rows[0].startswith("| manifest"):
            out.append([cell for row in rows[2:] for cell in row.strip("|").split("|")[1:]])
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p or "landing")
def test_every_table_has_one_number_of_decimals_and_vols_in_vol_points(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    checked = 0
    for i, table in enumerate(at.table):
        shown = table_text(table)
        cells = shown.to_numpy().ravel().tolist() + list(shown.index.to_flat_index())
        found = decimals_in(cells)
        assert len(found) <= 1, f"st.table {i} on {page}: numbers with {sorted(found)} decimals"
        checked += bool(found)
    for i, frame in enumerate(at.dataframe):
        config = json.loads(frame.proto.columns or "{}")
        floats = [c for c, dtype in frame.value.dtypes.items() if pd.api.types.is_float_dtype(dtype)]
        formats = {c: (config.get(c, {}).get("type_config") or {}).get("format") for c in floats}
        assert all(formats.values()), f"st.dataframe {i} on {page}: unformatted number columns {formats}"
        found = {int(m.group(1)) for f in formats.values() for m in re.finditer(r"\.(\d+)f", f)}
        assert len(found) <= 1, f"st.dataframe {i} on {page}: formats {formats}"
        vols = [c for c in floats if VOL_NAME.search(c)]
        assert all(numbers.VOL_UNIT in c for c in vols), f"st.dataframe {i} on {page}: vols not in vol points {vols}"
        # An absent number reads as the text tables write it, never st.dataframe's literal "None".
        assert frame.proto.placeholder == numbers.MISSING, f"st.dataframe {i} on {page}: missing cells read 'None'"
        checked += bool(floats)
    for i, cells in enumerate(markdown_tables(at)):
        found = decimals_in(cells)
        assert len(found) <= 1, f"markdown table {i} on {page}: numbers with {sorted(found)} decimals"
        checked += bool(found)
    if page != "pages/3_diagnostics.py":   # the diagnostics page draws figures, not tables
        assert checked, f"no number table found on {page or 'the landing page'}"


def test_explorer_coverage_of_a_method_without_a_band_reads_a_dash():
    """Issue 12: the scores table showed "None" in the coverage cell of a method without an interval."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    at.switch_page("pages/1_explorer.py").run()
    at.multiselect(key="methods").set_value(["best", "interp"]).run()
    assert not at.exception, [e.value for e in at.exception]
    scores = at.dataframe[0]
    covers = scores.value.set_index("method")["band covers (missing)"]
    assert covers.isna()["Interpolation"] and covers.notna()["Best"], covers   # interp has no band
    assert scores.proto.placeholder == numbers.MISSING == "—"
    assert scores.value.set_index("method").loc["Interpolation", "95 % band"] == numbers.MISSING
