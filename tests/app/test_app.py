"""The Streamlit app, driven page by page with streamlit.testing.v1.AppTest (no browser)."""
import base64
import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core
from core.repairers.registry import get_repairer
from tests.conftest import ROOT
from ui import numbers
from ui.presenters import explore, report
from ui.style import method_label

EXPLORER = "pages/1_explorer.py"
BENCHMARK = "pages/2_benchmark.py"
DIAGNOSTICS = "pages/3_diagnostics.py"
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


def alerts(at: AppTest) -> list:
    """The texts of the page's st.success and st.warning boxes."""
    return [x.value for x in list(at.success) + list(at.warning)]


def traces(figure: dict, kind: str) -> list:
    return [t for t in figure["data"] if t.get("type") == kind]


def same_content(wide: dict, narrow: dict) -> bool:
    """A panel grid and its stacked twin (ui.narrow) draw the same traces (but for their axes), the
    same panel titles and the same colour scales (but for where the colour bars sit)."""
    def traces_of(fig):
        return [{k: v for k, v in t.items() if k not in ("xaxis", "yaxis")} for t in fig["data"]]

    def scales(fig):
        return {k: {a: b for a, b in v.items() if a != "colorbar"} | {"bar": v.get("colorbar", {}).get("title", {}).get("text")}
                for k, v in fig["layout"].items() if k.startswith("coloraxis")}

    return (traces_of(wide) == traces_of(narrow) and panel_titles(wide) == panel_titles(narrow)
            and scales(wide) == scales(narrow))


def panel_titles(figure: dict) -> list:
    return [a["text"].replace("<b>", "").replace("</b>", "").replace("<br>", " ")
            for a in figure["layout"].get("annotations", [])]


# ----------------------------------------------------------------------------- landing

def test_overview_shows_the_headline_and_the_manifests():
    at = open_app()
    text = " ".join(m.value for m in at.markdown)
    result = report.load_benchmark()
    for cell in result["cells"]:
        assert report.cell_label(cell) in text
        for m in cell["best"]:
            assert f"{method_label(m)}: {report._fmt_score(cell['rmse'][m])}**" in text
        for m in cell["rmse"]:
            assert f"{method_label(m)}: {report._fmt_score(cell['rmse'][m])}" in text, "every method in the 2 x 2"
    verdict = report.verdict_summary(report.best_verdicts(result, label=method_label), label=method_label)
    assert verdict in alerts(at)
    # Both manifests: the CNN's facts and curve, Best's facts, validation per cell and conformal multipliers.
    assert "best validation RMSE" in text
    curve = charts(at)["val_curve"]
    np.testing.assert_allclose(array(curve["data"][0]["y"]), report.read_manifest()["history"]["val_rmse_iv"])
    assert curve["layout"]["xaxis"]["title"]["text"] == "epoch"
    best = report.read_manifest(report.best_weights_path())
    assert f"| fit time (s) | {best['fit_seconds']} |" in text
    for r in report.validation_rows(best):
        assert f"| {r['cell']} | {r['rmse']} | {r['cov80']:.2f} | {r['cov95']:.2f} |" in text
    q95 = best["conformal"]["quantiles"]["0"]["0.95"]
    assert f"| 95 % | {q95:.2f} | 1.96 |" in text
    assert [t.label for t in at.tabs] == ["Best (weights/best.pt)", "CNN (weights/cnn.pt)"]
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "CNN: cnn.pt loaded" in captions and "Best: best.pt loaded" in captions


# ----------------------------------------------------------------------------- explorer

def test_explorer_first_load_is_an_adversarial_sabr_event_surface():
    at = open_app(EXPLORER)
    assert at.selectbox(key="family").value == "sabr_event"
    assert at.selectbox(key="regime").value == "adversarial"
    assert at.multiselect(key="methods").value == ["best", "vae", "interp", "svi", "cnn"]
    assert at.radio(key="arbitrage").value == "default"
    assert at.radio(key="arbitrage").options[0] == "method default (calendar; full for Best)"
    figs = charts(at)
    # Each panel grid twice, side by side and stacked for a phone (ui.narrow, issue 12): the same traces.
    assert set(figs) == {"surface_grid", "stale_grid", "smile", "term", "g_grid", "surface_grid_narrow",
                         "stale_grid_narrow", "g_grid_narrow"}
    for key in ("surface_grid", "stale_grid", "g_grid"):
        assert same_content(figs[key], figs[f"{key}_narrow"]), key
    grid = figs["surface_grid"]
    titles = panel_titles(grid)
    assert titles[:3] == ["Truth", "Quotes 28 of 221", "Quote noise |quote − truth|"]
    assert {"Best", "CNN", "Interpolation", "SVI", "VAE", "Best |error|", "CNN |error|", "Best conformal 95 %",
            "CNN ±1.96 sd (95 %)"} <= set(titles)
    heatmaps = traces(grid, "heatmap")
    n_sd = sum(1 for t in titles if t.startswith("VAE ") and "|error|" not in t) + 2   # Best, CNN (and the VAE)
    assert len(heatmaps) == 2 + 1 + 5 + 5 + n_sd  # truth, quotes, noise, repairs, errors, half-widths
    vols = [h for h in heatmaps if h["coloraxis"] == "coloraxis"]
    errors = [h for h in heatmaps if h["coloraxis"] == "coloraxis2"]
    assert len(vols) == 7 and len(errors) == 6 + n_sd, "vols share one colour scale; errors and half-widths another"
    assert grid["layout"]["coloraxis"]["colorbar"]["title"]["text"] == "iv"
    assert "k=%{x:.3f}" in heatmaps[0]["hovertemplate"]
    # The truth panel is the sampled surface; the half-widths are each repairer's own 95 % half-width.
    truth = explore.sample_surface("sabr_event", 3)
    np.testing.assert_allclose(array(heatmaps[0]["z"]), truth)
    iv_obs = array(heatmaps[1]["z"])
    for m, name in (("best", "Best half-width"), ("cnn", "CNN half-width")):
        res = core.repair(iv_obs, m)
        expected = get_repairer(m).half_width(res.sd, 0.95)
        np.testing.assert_allclose(array(next(h for h in heatmaps if h["name"] == name)["z"]), expected, rtol=1e-6)
    # Scores: one row per method, its projection, raw and projected rates, the band and its coverage.
    scores = at.dataframe[0].value
    assert list(scores["method"]) == ["Best", "VAE", "Interpolation", "SVI", "CNN"]
    projection = list(scores["projection"])
    assert projection[0] == "full" and projection[2:] == ["calendar"] * 3
    assert (scores["calendar projected"] == 0).all()
    assert scores.set_index("method").loc["Best", "g(k)<0 projected"] == 0
    bands = list(scores["95 % band"])
    assert bands[0] == "conformal 95 %" and bands[2:] == ["—", "—", "±1.96 sd (95 %)"]
    view = explore.score_surface(truth, iv_obs, ("best", "vae", "interp", "svi", "cnn"))
    # In ui.numbers' units: RMSEs in vol points, rates and coverage in percent.
    rmse_column = f"missing RMSE ({numbers.VOL_UNIT})"
    for label, m in (("Best", "best"), ("Interpolation", "interp"), ("CNN", "cnn")):
        shown = scores.set_index("method").loc[label]
        assert shown[rmse_column] == pytest.approx(numbers.VOL_POINTS * view.methods[m].rmse_missing)
        assert shown["g(k)<0 raw"] == pytest.approx(100 * view.methods[m].g_negative_raw)
        assert shown["calendar raw"] == pytest.approx(100 * view.methods[m].raw_calendar)
    coverage = view.methods["best"].band_coverage
    assert scores.set_index("method").loc["Best", "band covers (missing)"] == pytest.approx(100 * coverage)
    verdict = (at.success or at.info)[0].value
    best = scores.loc[scores[rmse_column].idxmin()]
    assert f"**{best['method']}**" in verdict or best["method"] in verdict
    assert numbers.number(best[rmse_column]) in verdict
    # Stale scores of Best on the quotes, the flagged ones marked.
    stale = figs["stale_grid"]
    score = next(h for h in traces(stale, "heatmap") if h["name"] == "Best stale score")
    np.testing.assert_allclose(array(score["z"]), view.methods["best"].stale, rtol=1e-6)
    flagged = next(t for t in traces(stale, "scatter") if t["name"] == "flagged")
    assert len(array(flagged["x"])) == view.stale_summary("best")["flagged"]
    assert any(f"flags {view.stale_summary('best')['flagged']} of 28 quotes" in m.value for m in at.markdown)
    # Slices: truth, quotes, each method, and the calibrated bands, labelled.
    smile = figs["smile"]
    names = [t.get("name") for t in smile["data"]]
    assert {"truth", "quotes", "Best", "CNN", "Interpolation", "SVI", "Best conformal 95 % band",
            "CNN ±1.96 sd (Gaussian 95 %) band"} <= set(names)
    upper = array(next(t for t in smile["data"] if t.get("name") == "Best conformal 95 % band")["y"])
    np.testing.assert_allclose(upper, view.smile(view.default_smile_index())["methods"]["best"]["upper"], rtol=1e-6)
    assert smile["layout"]["xaxis"]["title"]["text"].startswith("log-moneyness")
    assert len(traces(figs["g_grid"], "heatmap")) == 5


def test_explorer_projection_and_stale_controls():
    at = open_app(EXPLORER)
    at.radio(key="arbitrage").set_value("full").run()
    assert_clean(at)
    scores = at.dataframe[0].value
    assert set(scores["projection"]) == {"full"}
    assert (scores["g(k)<0 projected"] == 0).all() and (scores["calendar projected"] == 0).all()
    at.radio(key="arbitrage").set_value("calendar").run()
    assert set(at.dataframe[0].value["projection"]) == {"calendar"}
    # Stale quotes made on purpose are ringed, and the flags are counted against them.
    at.selectbox(key="regime").set_value("regular").run()
    at.toggle(key="stale").set_value(True).run()
    assert_clean(at)
    stale = charts(at)["stale_grid"]
    rings = [t for t in traces(stale, "scatter") if t["name"] == "made stale"]
    truth = explore.sample_surface("sabr_event", 3)
    mask = explore.sample_mask("regular", 10)
    _, is_stale = explore.stale_quotes(explore.quotes(truth, mask, 18.0, 10), 10)
    assert len(rings) == 2 and len(array(rings[0]["x"])) == is_stale.sum()
    assert any(f"Of the {is_stale.sum()} quote(s) made stale" in m.value for m in at.markdown)


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
    # Heston, the family with real dynamics, samples as its generator does.
    at.selectbox(key="family").set_value("heston").run()
    assert_clean(at)
    np.testing.assert_allclose(array(charts(at)["surface_grid"]["data"][0]["z"]), explore.sample_surface("heston", 3))
    at.selectbox(key="family").set_value("shifted_ssvi").run()
    # Regime: regular masks quote about half the grid.
    at.selectbox(key="regime").set_value("regular").run()
    assert_clean(at)
    quoted = int(panel_titles(charts(at)["surface_grid"])[1].split(" ")[1])
    assert quoted == explore.sample_mask("regular", 10).sum()
    # Methods: without the CNN there is no sd row and no band.
    at.multiselect(key="methods").set_value(["interp", "svi"]).run()
    assert_clean(at)
    figs = charts(at)
    assert not any("95 %" in t for t in panel_titles(figs["surface_grid"]))
    assert len(traces(figs["surface_grid"], "heatmap")) == 2 + 1 + 2 + 2
    assert "stale_grid" not in figs, "no method with a stale score, no stale panel"
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
    assert len(at.radio(key="arbitrage").options) == len(explore.projection_choices())
    assert "Heston" in at.selectbox(key="family").options


def drawn_grid(at) -> np.ndarray:
    """The (13, 17) grid of the explorer's two editor halves, side by side again."""
    return np.concatenate([e.value.to_numpy() for e in at.data_editor], axis=1)


def test_explorer_drawn_mask_cell_and_presets():
    at = open_app(EXPLORER)
    at.toggle(key="draw_mask").set_value(True).run()
    assert_clean(at)
    # Two halves, k <= 0 over k > 0 (every header whole at 1280 px: test_layout_browser).
    assert [e.key for e in at.data_editor] == ["mask_editor_left", "mask_editor_right"]
    mask = explore.sample_mask("adversarial", 10)
    np.testing.assert_array_equal(drawn_grid(at), mask)
    # Untick a quoted cell of the right half: its quote disappears from the quotes panel.
    t, k = np.argwhere(mask & (core.K_GRID > 0))[0]
    column = f"{core.K_GRID[k]:+.3f}"
    at.session_state["mask_editor_right"] = {"edited_rows": {int(t): {column: False}}, "added_rows": [],
                                             "deleted_rows": []}
    at.run()
    assert_clean(at)
    quotes = array(charts(at)["surface_grid"]["data"][1]["z"])
    assert np.isnan(quotes[t, k]), "an unticked cell must not be quoted"
    assert panel_titles(charts(at)["surface_grid"])[1] == f"Quotes {mask.sum() - 1} of 221"
    # A preset applies to the drawn mask.
    at.button(key="preset_0").click().run()   # Drop left wing
    assert_clean(at)
    left = drawn_grid(at)[:, core.K_GRID < -explore.WING_K]
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
    assert [e.key for e in at.data_editor] == ["surface_editor_left", "surface_editor_right"]
    assert charts(at), "a drawn surface starts from the sample and repairs at once"
    at.session_state["surface_editor_left"] = {"edited_rows": {2: {"+0.000": value}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert at.error and message in at.error[0].value and "T=0.40, k=+0.000" in at.error[0].value


def test_explorer_drawn_surface_edit_reaches_the_truth():
    at = open_app(EXPLORER)
    at.radio(key="source").set_value("Draw").run()
    at.session_state["surface_editor_left"] = {"edited_rows": {2: {"+0.000": 0.55}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert array(charts(at)["surface_grid"]["data"][0]["z"])[2, 8] == pytest.approx(0.55)


# ----------------------------------------------------------------------------- bad states

def test_missing_weights_leave_the_baselines_working(monkeypatch):
    monkeypatch.setenv(report.WEIGHTS_ENV, "/nonexistent/cnn.pt")
    monkeypatch.setenv(report.BEST_WEIGHTS_ENV, "/nonexistent/best.pt")
    at = open_app()
    sidebar = [w.value for w in at.sidebar.warning]
    assert any("CNN unavailable" in w for w in sidebar) and any("Best unavailable" in w for w in sidebar)
    assert any("CNN manifest" in w.value for w in at.warning) and any("manifest of Best" in w.value for w in at.warning)
    at.switch_page(EXPLORER).run()
    assert_clean(at)
    assert any("CNN is unavailable" in w.value and "not found" in w.value for w in at.warning)
    assert any("Best is unavailable" in w.value and "not found" in w.value for w in at.warning)
    grid = charts(at)["surface_grid"]
    assert "Interpolation" in panel_titles(grid)
    assert "CNN" not in panel_titles(grid) and "Best" not in panel_titles(grid)
    assert list(at.dataframe[0].value["method"]) == ["VAE", "Interpolation", "SVI"]   # the VAE has its weights
    # The benchmark reruns without them, and says so.
    at.switch_page(BENCHMARK).run()
    at.selectbox(key="bench_n").set_value(20)
    at.multiselect(key="bench_methods").set_value(["interp", "cnn"])
    at.button(key="bench_run").click().run()
    assert_clean(at)
    assert any("left out" in w.value for w in at.warning)
    assert any("Best is not in these results" in i.value for i in at.info)


def test_corrupt_results_give_an_error_not_a_traceback(monkeypatch, tmp_path):
    bad = tmp_path / "benchmark.json"
    bad.write_text("{oops")
    monkeypatch.setenv(report.RESULTS_ENV, str(bad))
    for page in (None, BENCHMARK, DIAGNOSTICS):
        at = open_app(page)
        assert at.error and "unreadable" in at.error[0].value


# ----------------------------------------------------------------------------- benchmark

def bold_cells(table) -> set:
    styles = table.proto.arrow_data.styler.styles
    return {tuple(int(x) for x in re.findall(r"row(\d+)_col(\d+)", rule)[0])
            for block in re.findall(r"([^{}]*)\{ *font-weight: bold *\}", styles) for rule in block.split(",")}


def shown(table):
    from streamlit import dataframe_util

    return dataframe_util.convert_arrow_bytes_to_pandas_df(table.proto.arrow_data.styler.display_values)


def test_benchmark_tables_chart_and_bold():
    at = open_app(BENCHMARK)
    assert len(at.table) == 8 and not at.dataframe
    result = report.load_benchmark()
    rmse_table, projection, uncertainty, stale, downstream, lofo, outside, real_table = at.table
    # Real chains last: one row per chain x protocol, the lowest method bold, every method shown.
    from ui.presenters import real

    frame = real.rmse_frame(real.load_real())
    methods = [c for c in frame.columns if c not in ("chain", "protocol", "lowest")]
    assert bold_cells(real_table) == {(i, methods.index(m)) for i, m in enumerate(frame["lowest"])}
    assert list(shown(real_table).columns) == methods
    # Headline: every method at its default projection, best and ties bold.
    rmse = rmse_table.value
    assert list(rmse.index) == [report.cell_label(c) for c in result["cells"]]
    first = result["cells"][0]
    for m in first["rmse"]:
        assert rmse.loc[report.cell_label(first), method_label(m)] == report._fmt_score(first["rmse"][m])
    columns = list(rmse.columns)   # "obs %", then the methods by label
    assert bold_cells(rmse_table) == {(i, columns.index(method_label(m))) for i, c in enumerate(result["cells"])
                                      for m in c["best"]}
    # The plain sentences: one summary, one line per cell.
    found = report.best_verdicts(result, label=method_label)
    assert report.verdict_summary(found, label=method_label) in alerts(at)
    text = " ".join(m.value for m in at.markdown)
    for v in found:
        assert f"**{v['label']}**: {v['text']}" in text
    # Bars with SE error bars, one colour per method.
    bars = charts(at)["rmse_bars"]
    assert {t["name"] for t in bars["data"]} == {method_label(m) for m in first["rmse"]}
    cnn = [t for t in bars["data"] if t["name"] == "CNN"][0]
    np.testing.assert_allclose(array(cnn["error_y"]["array"]), [c["rmse"]["cnn"]["se"] for c in result["cells"]])
    assert cnn["marker"]["color"] == "#d62728"
    assert [t for t in bars["data"] if t["name"] == "Best"][0]["marker"]["color"] == "#9467bd"
    # Linear by default: bar lengths are ratios (issue 12, item 8); log on request.
    assert bars["layout"]["yaxis"]["type"] == "linear" and at.toggle(key="bars_log").value is False
    # Projections: calendar vs full RMSE, g(k) < 0 raw -> calendar -> full, calendar after full.
    p = projection.value
    d = first["diagnostics_by_method"]["best"]
    best = p.loc[(report.cell_label(first), "Best")]
    assert best["default"] == "full"
    assert best["RMSE calendar"] == report._fmt_score(first["rmse_calendar"]["best"])
    assert best["RMSE full"] == report._fmt_score(first["rmse_full"]["best"])
    assert best["g(k)<0 % raw → calendar → full"] == " → ".join(
        f"{100 * d[k]:.2f}" for k in ("g_negative_raw", "g_negative", "g_negative_full"))
    assert len(p) == len(result["cells"]) * len(first["rmse"])
    assert any(note in text for note in report.projection_notes(result, method_label))
    # Uncertainty: methods with an sd only; coverage at both levels, widths, correlation, stale AUC.
    u = uncertainty.value
    with_sd = {method_label(m) for m, d in first["diagnostics_by_method"].items() if "cov80" in d}
    assert {"CNN", "Best"} <= with_sd
    assert set(u.index.get_level_values("method")) == with_sd
    row = u.loc[(report.cell_label(first), "Best")]
    assert row["cov80"] == numbers.ratio(d["cov80"]) and row["cov95"] == numbers.ratio(d["cov95"])
    assert row[f"width95 ({numbers.VOL_UNIT})"] == numbers.vol(d["width95"])
    assert row["stale AUC"] == numbers.ratio(d["stale_auc"])
    for note in report.coverage_notes(result, method_label):
        assert note in text
    assert "CNN: coverage is not nominal in 4 of 4 cells" in text
    # Stale AUC of every method, the highest bold.
    s = stale.value
    assert s.loc[report.cell_label(first), "Best"] == numbers.ratio(d["stale_auc"])
    # Downstream SVI and its sentence.
    assert downstream.value.loc[report.cell_label(first), "Best"] == report._fmt_score(first["downstream_svi"]["best"])
    assert any(x.value.startswith("Downstream SVI: ") for x in list(at.success) + list(at.warning))
    # Leave one family out: baselines, best on everything, best without the family, held-out coverage.
    lo = lofo.value
    block = result["lofo"][1]
    cell = block["cells"][0]
    r = lo.loc[("SABR-event", report.cell_label(cell))]
    assert r["Best without the family"] == report._fmt_score(cell["rmse"]["best_lofo"])
    assert r["Best (every family)"] == report._fmt_score(cell["rmse"]["best"])
    assert r["Interp → SVI"] == report._fmt_score(cell["rmse"]["interp_svi"])
    assert r["cov80"] == numbers.ratio(cell["diagnostics_by_method"]["best_lofo"]["cov80"])
    for note in report.lofo_notes(result, method_label):
        assert note in text
    assert "not nominal in" in text
    # Outside the prior: families and a mask Best never trained on, its ratio to the classical best.
    out = outside.value
    cell = result["outside"][1]
    r = out.loc[report.cell_label(cell)]
    assert r["Best"] == report._fmt_score(cell["rmse"]["best"])
    classical = min(cell["rmse"][m]["mean"] for m in report.LOFO_BASELINES)
    assert r["× classical"] == numbers.ratio(cell["rmse"]["best"]["mean"] / classical)
    for note in report.outside_notes(result, method_label):
        assert note in text


def test_benchmark_says_plainly_where_best_does_not_win(monkeypatch, tmp_path):
    result = report.load_benchmark()
    cell = result["cells"][2]
    others = {m: s for m, s in cell["rmse"].items() if m != "best"}
    runner = min(others, key=lambda m: others[m]["mean"])
    winner = method_label(runner)
    cell["rmse"]["best"] = {"mean": others[runner]["mean"] + 0.01, "se": 0.0005}   # Best loses here
    cell["best"] = report.best_in_row(cell["rmse"])
    result.pop("lofo")
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(result))
    monkeypatch.setenv(report.RESULTS_ENV, str(path))
    for page in (None, BENCHMARK):
        at = open_app(page)
        warning = [w.value for w in at.warning]
        assert f"Best does not win by more than one SE in 1 of 4 cells: SABR-event / regular (beaten by {winner})." in warning
    text = " ".join(m.value for m in at.markdown)
    assert f"**SABR-event / regular**: Best does not win: {winner} is lower by more than one SE" in text
    assert any("no leave-one-family-out section" in i.value for i in at.info)


def test_benchmark_run_button_caches_and_selects_the_run():
    at = open_app(BENCHMARK)
    at.selectbox(key="bench_n").set_value(20)
    at.multiselect(key="bench_methods").set_value(["interp", "svi"])
    at.button(key="bench_run").click().run()
    assert_clean(at)
    assert at.sidebar.radio(key="results_source").value == "latest run"
    assert "your run: 20 surfaces per cell" in " ".join(c.value for c in at.caption)
    assert set(at.table[0].value.columns) == {"obs %", "Interpolation", "SVI"}
    assert any("Best is not in these results" in i.value for i in at.info)
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
        assert set(figs) == {"reliability", "err_sd", "g_maps", "calendar_maps", "roc", "g_maps_narrow",
                             "calendar_maps_narrow"}
        assert same_content(figs["g_maps"], figs["g_maps_narrow"])
        assert same_content(figs["calendar_maps"], figs["calendar_maps_narrow"])
        cell = result["cells"][index]
        details = cell["details"]
        for m in ("cnn", "best"):   # every method with an sd
            rel = [t for t in figs["reliability"]["data"] if t["name"] == method_label(m)][0]
            np.testing.assert_allclose(array(rel["y"]), details["reliability"][m]["empirical"])
        # Error vs sd: each method's own interval edges (Best's conformal multipliers).
        q = get_repairer("best").calibrator.quantiles[0]
        edge = next(t for t in figs["err_sd"]["data"] if t["name"].startswith("Best 95 % edge"))
        assert edge["name"] == f"Best 95 % edge (|err| = {q[0.95]:.2f}·sd)"
        x, y = array(edge["x"]), array(edge["y"])
        np.testing.assert_allclose(y / x, q[0.95])
        assert any(t["name"] == "CNN 95 % edge (|err| = 1.96·sd)" for t in figs["err_sd"]["data"])
        assert figs["err_sd"]["layout"]["xaxis"]["title"]["text"] == "predicted sd (vol units, log scale)"
        n_methods = len(cell["rmse"])
        assert len(traces(figs["g_maps"], "heatmap")) == n_methods
        assert len(traces(figs["calendar_maps"], "heatmap")) == 2 * n_methods
        assert array(traces(figs["g_maps"], "heatmap")[0]["z"]).shape == (13, 15)
        best_g = next(t for t in traces(figs["g_maps"], "heatmap") if t["name"] == "Best")
        np.testing.assert_allclose(array(best_g["z"]), details["g_negative_map"]["best"])
        roc_names = [t["name"] for t in figs["roc"]["data"]]
        for m in cell["rmse"]:
            auc = cell["diagnostics_by_method"][m]["stale_auc"]
            assert f"{method_label(m)} (AUC {auc:.3f})" in roc_names
        assert report.full_projection_note(cell, method_label) in [c.value for c in at.caption]
        assert any(n in " ".join(m.value for m in at.markdown) for n in report.coverage_notes([cell], method_label))
