"""The Streamlit app, driven page by page with streamlit.testing.v1.AppTest (no browser)."""
import base64
import json
import re

import numpy as np

from ui.style import method_label
import pytest
from streamlit.testing.v1 import AppTest

import core
from core import explore, report
from tests.conftest import ROOT

EXPLORER = "pages/1_Repair_explorer.py"
BENCHMARK = "pages/2_Benchmark.py"
DIAGNOSTICS = "pages/3_Diagnostics.py"
TIMEOUT = 120


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> dict:
    """Plotly figures by element key, as the JSON the browser receives."""
    return {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def array(value) -> np.ndarray:
    """A plotly JSON array (a list, or plotly's base64 typed array) as a float numpy array."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(n) for n in str(value.get("shape", data.size)).split(",")]
        return data.reshape(shape).astype(float)
    return np.array([np.nan if v is None else v for v in np.ravel(value)], float).reshape(np.shape(value))


def traces(figure: dict, kind: str) -> list:
    return [t for t in figure["data"] if t.get("type") == kind]


def panel_titles(figure: dict) -> list:
    return [a["text"].replace("<b>", "").replace("</b>", "") for a in figure["layout"].get("annotations", [])]


# ----------------------------------------------------------------------------- landing

def test_overview_shows_the_headline_and_the_manifest():
    at = open_app()
    text = " ".join(m.value for m in at.markdown)
    result = report.load_benchmark()
    for cell in result["cells"]:
        assert report.cell_label(cell) in text
        best = cell["best"][0]
        assert f"{cell['rmse'][best]['mean']:.4f} ± {cell['rmse'][best]['se']:.4f}**" in text
    assert "best validation RMSE" in text
    curve = charts(at)["val_curve"]
    np.testing.assert_allclose(array(curve["data"][0]["y"]), report.read_manifest()["history"]["val_rmse_iv"])
    assert curve["layout"]["xaxis"]["title"]["text"] == "epoch"
    assert any("loaded" in c.value for c in at.sidebar.caption)


# ----------------------------------------------------------------------------- explorer

def test_explorer_first_load_is_an_adversarial_sabr_event_surface():
    at = open_app(EXPLORER)
    assert at.selectbox(key="family").value == "sabr_event"
    assert at.selectbox(key="regime").value == "adversarial"
    assert at.multiselect(key="methods").value == ["cnn", "interp", "svi"]
    figs = charts(at)
    assert set(figs) == {"surface_grid", "smile", "term", "g_grid"}
    grid = figs["surface_grid"]
    titles = panel_titles(grid)
    assert titles[:2] == ["Truth", "Quotes (28 of 221)"]
    assert {"CNN", "Interpolation", "SVI", "|CNN − truth|", "CNN predictive sd"} <= set(titles)
    heatmaps = traces(grid, "heatmap")
    assert len(heatmaps) == 2 + 1 + 3 + 3 + 1  # truth, quotes, noise, repairs, errors, one sd
    vols = [h for h in heatmaps if h["coloraxis"] == "coloraxis"]
    errors = [h for h in heatmaps if h["coloraxis"] == "coloraxis2"]
    assert len(vols) == 5 and len(errors) == 5, "vols and errors each share one colour scale"
    assert grid["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "iv"
    assert "k=%{x:.3f}" in heatmaps[0]["hovertemplate"]
    # The truth panel is the sampled surface.
    np.testing.assert_allclose(array(heatmaps[0]["z"]), explore.sample_surface("sabr_event", 3))
    # Scores: one row per method, and a verdict.
    scores = at.dataframe[0].value
    assert list(scores["method"]) == ["CNN", "Interpolation", "SVI"]
    assert (scores["projected calendar"] == 0).all()
    verdict = (at.success or at.info)[0].value
    best = scores.loc[scores["missing-point RMSE"].idxmin()]
    assert f"**{best['method']}**" in verdict or best["method"] in verdict
    assert f"{best['missing-point RMSE']:.4f}" in verdict
    # Slices: truth, quotes, each method, and the CNN's band.
    smile = figs["smile"]
    names = [t.get("name") for t in smile["data"]]
    assert {"truth", "quotes", "CNN", "Interpolation", "SVI", "CNN ±2 sd"} <= set(names)
    assert smile["layout"]["xaxis"]["title"]["text"].startswith("log-moneyness")
    assert len(traces(figs["g_grid"], "heatmap")) == 3


def test_explorer_controls_change_the_views():
    at = open_app(EXPLORER)
    before = charts(at)["surface_grid"]
    at.selectbox(key="family").set_value("shifted_ssvi").run()
    assert_clean(at)
    after = charts(at)["surface_grid"]
    assert not np.allclose(array(after["data"][0]["z"]), array(before["data"][0]["z"]))
    np.testing.assert_allclose(array(after["data"][0]["z"]), explore.sample_surface("shifted_ssvi", 3))
    # SSVI sliders appear for an SSVI family and move the surface.
    rho = at.slider(key="ssvi_shifted_ssvi_3_rho")
    assert rho.value == pytest.approx(explore.ssvi_parameters("shifted_ssvi", 3)["rho"])
    rho.set_value(-0.85).run()
    assert_clean(at)
    moved = charts(at)["surface_grid"]["data"][0]["z"]
    np.testing.assert_allclose(array(moved), explore.sample_surface(
        "shifted_ssvi", 3, explore.ssvi_parameters("shifted_ssvi", 3) | {"rho": -0.85}), rtol=1e-9)
    # Regime: regular masks quote about half the grid.
    at.selectbox(key="regime").set_value("regular").run()
    assert_clean(at)
    quoted = int(panel_titles(charts(at)["surface_grid"])[1].split("(")[1].split(" ")[0])
    assert quoted == explore.sample_mask("regular", 10).sum()
    # Methods: without the CNN there is no sd row and no band.
    at.multiselect(key="methods").set_value(["interp", "svi"]).run()
    assert_clean(at)
    figs = charts(at)
    assert not any("sd" in t for t in panel_titles(figs["surface_grid"]))
    assert len(traces(figs["surface_grid"], "heatmap")) == 2 + 1 + 2 + 2
    assert list(at.dataframe[0].value["method"]) == ["Interpolation", "SVI"]
    # Slices follow their sliders.
    at.select_slider(key="t_index").set_value(6).run()
    assert charts(at)["smile"]["layout"]["title"]["text"] == f"Smile at T = {core.T_GRID[6]:.2f} y"
    # The 3-D view.
    at.toggle(key="show_3d").set_value(True).run()
    assert_clean(at)
    surface = charts(at)["surface_3d"]
    assert [t["type"] for t in surface["data"]] == ["surface", "surface", "scatter3d"]
    assert surface["layout"]["scene"]["zaxis"]["title"]["text"] == "implied vol"


def test_explorer_new_methods_appear_in_the_picker():
    at = open_app(EXPLORER)
    assert len(at.multiselect(key="methods").options) == len(core.METHODS)
    modes = explore.arbitrage_modes()
    assert (len(at.radio(key="arbitrage").options) == len(modes)) if len(modes) > 1 else \
        "arbitrage" not in [r.key for r in at.radio]


def test_explorer_drawn_mask_cell_and_presets():
    at = open_app(EXPLORER)
    at.toggle(key="draw_mask").set_value(True).run()
    assert_clean(at)
    editor = at.data_editor[0]
    assert editor.key == "mask_editor"
    mask = explore.sample_mask("adversarial", 10)
    np.testing.assert_array_equal(editor.value.to_numpy(bool), mask)
    # Untick a quoted cell: its quote disappears from the quotes panel.
    t, k = np.argwhere(mask)[0]
    column = f"{core.K_GRID[k]:+.3f}"
    at.session_state["mask_editor"] = {"edited_rows": {int(t): {column: False}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    quotes = array(charts(at)["surface_grid"]["data"][1]["z"])
    assert np.isnan(quotes[t, k]), "an unticked cell must not be quoted"
    assert panel_titles(charts(at)["surface_grid"])[1] == f"Quotes ({mask.sum() - 1} of 221)"
    # A preset applies to the drawn mask.
    at.button(key="preset_0").click().run()   # Drop left wing
    assert_clean(at)
    left = at.data_editor[0].value.to_numpy(bool)[:, core.K_GRID < -explore.WING_K]
    assert not left.any()
    # Clearing every cell: a clear error, no chart, no traceback.
    names = list(explore.MASK_PRESETS)
    at.button(key=f"preset_{names.index('Clear every cell')}").click().run()
    assert_clean(at)
    assert at.error and "hides every cell" in at.error[0].value
    assert not charts(at)
    assert at.sidebar.radio(key="results_source").value == "shipped results", "the sidebar survives st.stop"


@pytest.mark.parametrize("value, message", [(-0.1, "<= 0"), (None, "empty or not a number"),
                                            ("abc", "empty or not a number"), (7.0, "above 2")])
def test_explorer_drawn_surface_rejects_bad_vols(value, message):
    at = open_app(EXPLORER)
    at.radio(key="source").set_value("Draw").run()
    assert_clean(at)
    assert at.data_editor[0].key == "surface_editor"
    assert charts(at), "a drawn surface starts from the sample and repairs at once"
    at.session_state["surface_editor"] = {"edited_rows": {2: {"+0.000": value}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert at.error and message in at.error[0].value and "T=0.40, k=+0.000" in at.error[0].value


def test_explorer_drawn_surface_edit_reaches_the_truth():
    at = open_app(EXPLORER)
    at.radio(key="source").set_value("Draw").run()
    at.session_state["surface_editor"] = {"edited_rows": {2: {"+0.000": 0.55}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert array(charts(at)["surface_grid"]["data"][0]["z"])[2, 8] == pytest.approx(0.55)


# ----------------------------------------------------------------------------- bad states

def test_missing_weights_leave_the_baselines_working(monkeypatch):
    monkeypatch.setenv(report.WEIGHTS_ENV, "/nonexistent/cnn.pt")
    at = open_app()
    assert any("CNN unavailable" in w.value for w in at.sidebar.warning)
    assert any("manifest" in w.value for w in at.warning)
    at.switch_page(EXPLORER).run()
    assert_clean(at)
    assert any("CNN is unavailable" in w.value and "not found" in w.value for w in at.warning)
    grid = charts(at)["surface_grid"]
    assert "Interpolation" in panel_titles(grid) and "CNN" not in panel_titles(grid)
    assert list(at.dataframe[0].value["method"]) == ["Interpolation", "SVI"]
    # The benchmark reruns without the CNN, and says so.
    at.switch_page(BENCHMARK).run()
    at.selectbox(key="bench_n").set_value(20)
    at.button(key="bench_run").click().run()
    assert_clean(at)
    assert any("left out" in w.value for w in at.warning)


def test_corrupt_results_give_an_error_not_a_traceback(monkeypatch, tmp_path):
    bad = tmp_path / "benchmark.json"
    bad.write_text("{oops")
    monkeypatch.setenv(report.RESULTS_ENV, str(bad))
    for page in (None, BENCHMARK, DIAGNOSTICS):
        at = open_app(page)
        assert at.error and "unreadable" in at.error[0].value


# ----------------------------------------------------------------------------- benchmark

def test_benchmark_tables_chart_and_bold():
    at = open_app(BENCHMARK)
    assert len(at.table) == 3 and not at.dataframe
    result = report.load_benchmark()
    rmse = at.table[0].value
    assert list(rmse.index) == [report.cell_label(c) for c in result["cells"]]
    first = result["cells"][0]
    assert rmse.loc[report.cell_label(first), "CNN"] == f"{first['rmse']['cnn']['mean']:.4f} ± {first['rmse']['cnn']['se']:.4f}"
    styles = at.table[0].proto.arrow_data.styler.styles
    bold = {tuple(int(x) for x in re.findall(r"row(\d+)_col(\d+)", rule)[0])
            for block in re.findall(r"([^{}]*)\{ *font-weight: bold *\}", styles) for rule in block.split(",")}
    columns = list(rmse.columns)   # "obs %", then the methods by label
    expected = {(i, columns.index(label)) for i, c in enumerate(result["cells"])
                for label in [method_label(m) for m in c["best"]]}
    assert bold == expected
    bars = charts(at)["rmse_bars"]
    assert {t["name"] for t in bars["data"]} == {method_label(m) for m in result["cells"][0]["rmse"]}
    cnn = [t for t in bars["data"] if t["name"] == "CNN"][0]
    np.testing.assert_allclose(array(cnn["error_y"]["array"]), [c["rmse"]["cnn"]["se"] for c in result["cells"]])
    assert cnn["marker"]["color"] == "#d62728"
    diag = at.table[1].value
    assert len(diag) == 4 * len(result["cells"][0]["rmse"]) and {"cov80", "stale AUC", "g(k)<0 %"} <= set(diag.columns)
    from streamlit import dataframe_util

    shown = dataframe_util.convert_arrow_bytes_to_pandas_df(at.table[1].proto.arrow_data.styler.display_values)
    assert (shown == "—").any().any(), "coverage of a method without an sd shows as a dash"
    assert "0.676" in shown.to_numpy().ravel().tolist()   # CNN cov80, shifted SSVI / regular


def test_benchmark_run_button_caches_and_selects_the_run():
    at = open_app(BENCHMARK)
    at.selectbox(key="bench_n").set_value(20)
    at.multiselect(key="bench_methods").set_value(["interp", "svi"])
    at.button(key="bench_run").click().run()
    assert_clean(at)
    assert at.sidebar.radio(key="results_source").value == "latest run"
    assert "your run: 20 surfaces per cell" in " ".join(c.value for c in at.caption)
    assert set(at.table[0].value.columns) == {"obs %", "Interpolation", "SVI"}
    # Diagnostics show the same run.
    at.switch_page(DIAGNOSTICS).run()
    assert_clean(at)
    assert "your run" in " ".join(c.value for c in at.caption)


# ----------------------------------------------------------------------------- diagnostics

def test_diagnostics_every_figure_for_every_cell():
    at = open_app(DIAGNOSTICS)
    result = report.load_benchmark()
    for index in (3, 0):
        at.selectbox(key="diag_cell").set_value(index).run()
        assert_clean(at)
        figs = charts(at)
        assert set(figs) == {"reliability", "err_sd", "g_maps", "calendar_maps", "roc"}
        details = result["cells"][index]["details"]
        rel = [t for t in figs["reliability"]["data"] if t["name"] == "CNN"][0]
        np.testing.assert_allclose(array(rel["y"]), details["reliability"]["cnn"]["empirical"])
        n_methods = len(result["cells"][index]["rmse"])
        assert len(traces(figs["g_maps"], "heatmap")) == n_methods
        assert len(traces(figs["calendar_maps"], "heatmap")) == 2 * n_methods
        assert array(traces(figs["g_maps"], "heatmap")[0]["z"]).shape == (13, 15)
        roc_names = [t["name"] for t in figs["roc"]["data"]]
        auc = result["cells"][index]["diagnostics_by_method"]["cnn"]["stale_auc"]
        assert f"CNN (AUC {auc:.3f})" in roc_names
        assert figs["err_sd"]["layout"]["xaxis"]["title"]["text"] == "predicted sd (vol units)"
