"""Issue 12: pictures that tell the truth. Colour-scale endpoints, extrapolation marks, robust
scales, theme colours, the explorer's first view, the landing page's list, one stale threshold."""
import io
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest

from core.engine.grid import K_GRID, T_GRID
from tests.app.test_app import array
from tests.conftest import ROOT
from ui import figures, numbers, quote_figures, scales
from ui.presenters import explore
from ui.style import ERR_SCALE, T_SCALE, method_label, theme_colours

LIGHT_BG, DARK_BG = "#ffffff", "#0e1117"   # Streamlit's light and dark page backgrounds
TIMEOUT = 300


def luminance(colour: str) -> float:
    """WCAG relative luminance of '#rrggbb', 'rgb(r,g,b)' or 'rgba(r,g,b,a)'."""
    if colour.startswith("#"):
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [float(v) for v in re.findall(r"[\d.]+", colour)[:3]]
    c = [v / 255 for v in rgb]
    c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def lightest_at_zero(colorscale) -> bool:
    """The stop at 0 is the lightest colour of the scale (0 = no error / no violation = best)."""
    assert isinstance(colorscale, list), "an explicit list: a name means opposite things in plotly.py and plotly.js"
    lum = [luminance(c) for _, c in colorscale]
    return lum[0] == max(lum) and all(a >= b for a, b in itertools.pairwise(lum))


# ----------------------------------------------------------------------------- item 1: zero is the lightest

def test_error_scale_runs_from_the_lightest_colour():
    assert lightest_at_zero(ERR_SCALE)


def test_rate_maps_draw_zero_as_the_lightest_colour_even_unvalidated(monkeypatch):
    monkeypatch.setattr(figures, "VALIDATE", False)   # as the app draws it: plotly.js reads the spec as is
    zeros = np.zeros((12, 17)).tolist()
    some = np.where(np.arange(17) < 3, 0.4, 0.0)[None].repeat(12, 0).tolist()
    fig = figures.rate_maps({"raw": {"cnn": some}, "projected": {"cnn": zeros}}, K_GRID, T_GRID[1:], "T", "t")
    axis = fig.to_dict()["layout"]["coloraxis"]
    assert axis["cmin"] == 0 and axis["cmax"] == pytest.approx(0.4)
    assert lightest_at_zero([list(s) for s in axis["colorscale"]])
    only_zero = figures.rate_maps({"projected": {"cnn": zeros}}, K_GRID, T_GRID[1:], "T", "t").to_dict()
    assert only_zero["layout"]["coloraxis"]["cmax"] > 0, "an all-zero map stays at the pale end, not mid-scale"


def test_diagnostics_page_rate_maps_and_explorer_errors_share_the_pale_zero():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/3_diagnostics.py").run()
    assert not at.exception
    figs = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    for key in ("g_maps", "calendar_maps"):
        axis = figs[key]["layout"]["coloraxis"]
        assert axis["cmin"] == 0 and lightest_at_zero(axis["colorscale"]), key


# ----------------------------------------------------------------------------- item 2: extrapolation marked

def front_cut_chain() -> bytes:
    """The implied-vol sample with every expiry before T = 0.25 removed (quoted from T = 0.25 on)."""
    table = pd.read_csv(ROOT / "samples" / "quotes_iv.csv")
    return table[table["T"] >= 0.25].to_csv(index=False).encode()


def test_grid_csv_and_quotes_mark_extrapolated_nodes():
    from core.quotes.export import download_files
    from core.quotes.workflow import repair_quotes

    out = repair_quotes(front_cut_chain(), method="svi", name="cut.csv", stale=False)
    grid = out.grid_table
    first = out.expiries()[0]
    assert first >= 0.25
    assert grid.loc[grid["T"] < first - 1e-9, "extrapolated"].all(), "rows before the first expiry are guesses"
    assert not grid.loc[grid["observed"], "extrapolated"].all()
    used = out.quote_table["status"] == "used"
    assert not out.quote_table.loc[used, "extrapolated"].any(), "a used quote is inside the quoted region"
    csv = {name: data for name, data, _ in download_files(out)}["grid.csv"]
    exported = pd.read_csv(io.BytesIO(csv))
    assert "extrapolated" in exported.columns
    np.testing.assert_array_equal(exported["extrapolated"].to_numpy(bool), grid["extrapolated"].to_numpy(bool))
    # Outside an expiry's quoted strikes too: beyond the widest k quoted at the first expiry.
    k_hi = out.quote_table.loc[used & np.isclose(out.quote_table["T"], first), "k"].max()
    assert out.extrapolated(first, k_hi + 0.01) and not out.extrapolated(first, k_hi - 1e-6)


def test_quotes_figures_mark_extrapolation_and_keep_scales_on_the_quotes():
    from core.quotes.workflow import repair_quotes

    out = repair_quotes(front_cut_chain(), method="svi", name="cut.csv", stale=False)
    fig = quote_figures.grid_panels(out).to_dict()
    marks = [t for t in fig["data"] if t.get("name") == "extrapolated"]
    extrap = out.grid_table["extrapolated"].to_numpy(bool)
    assert marks and len(array(marks[0]["x"])) == extrap.sum()
    axis = fig["layout"]["coloraxis"]
    inside = out.result.iv.ravel()[~extrap]
    quoted = out.gridded.iv_obs[out.gridded.observed]
    assert axis["cmax"] == pytest.approx(max(inside.max(), quoted.max()))
    # However far an extrapolated corner goes, it cannot take the scale (it saturates instead).
    out.result.iv = np.where(extrap.reshape(out.result.iv.shape), 1.31, out.result.iv)
    assert quote_figures.grid_panels(out).to_dict()["layout"]["coloraxis"]["cmax"] == pytest.approx(axis["cmax"])
    # The smile at the first expiry: solid where quoted, dotted where extrapolated.
    curve, quotes = out.smile(out.expiries()[0])
    smile = quote_figures.smile(curve, quotes, out.expiries()[0], "svi").to_dict()
    dotted = [t for t in smile["data"] if t.get("line", {}).get("dash") == "dot"]
    assert dotted and "extrapolated" in dotted[0]["name"]
    ts = out.term_structure(8)
    term = quote_figures.term_structure(ts, float(K_GRID[8]), "svi").to_dict()
    assert any("extrapolated" in (t.get("name") or "") for t in term["data"])


def test_quotes_page_marks_extrapolation_and_labels_expiries_with_dates():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/4_quotes.py").run()
    at.radio(key="quotes_source").set_value("Sample: prices with dates").run()
    at.selectbox(key="quotes_method").set_value("best").run()
    assert not at.exception, [e.value for e in at.exception]
    figs = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    assert any(t.get("name") == "extrapolated" for t in figs["quotes_grid"]["data"])
    assert any("extrapolated" in c.value for c in at.caption)
    slider = at.select_slider(key="quotes_expiry")
    labels = list(slider.options)   # AppTest gives the formatted labels
    assert all(re.search(r"\d{4}-\d{2}-\d{2}", str(label)) for label in labels), labels
    # One threshold for Best's stale score on both pages, and the flagged table in vol points like the chart.
    assert f"score above {explore.STALE_FLAG_LLR:.2f}" in " ".join(m.value for m in at.markdown)
    flagged = [df.value for df in at.dataframe if "stale_score" in df.value.columns]
    if flagged:
        assert f"residual ({numbers.VOL_UNIT})" in flagged[0].columns
    assert numbers.VOL_UNIT in figs["quotes_residuals"]["layout"]["yaxis"]["title"]["text"], "the chart's unit too"
    names = [t.get("name") for t in figs["quotes_smile"]["data"]]
    assert "Best conformal 95 % band" in names


# ----------------------------------------------------------------------------- item 3: robust scales

def test_robust_range_is_not_set_by_a_steep_front_row():
    values = np.r_[np.linspace(0.18, 0.25, 204), np.full(17, 0.9)]   # a front row (8 %) far above the rest
    low, high = scales.robust_range(values)
    assert low >= 0.18 and (0.25 - 0.18) / (high - low) > 0.4, "the bulk keeps most of the colours"
    assert scales.robust_range(np.zeros(5), floor=0.0)[1] > 0
    assert scales.robust_range(np.linspace(0.1, 0.3, 50)) == pytest.approx((0.1, 0.3)), "a plain surface: min/max"


def test_focus_range_keeps_the_anchor_and_caps_a_spike():
    truth = np.linspace(0.2, 0.3, 13)
    spike = truth.copy()
    spike[0] = 3.0
    low, high = scales.focus_range(truth, [spike])
    assert low < 0.2 and 0.3 < high <= 0.3 + 0.5 * 0.1 + 0.05 * 0.2
    assert scales.focus_range(truth, [truth + 0.01])[1] >= 0.31


def test_explorer_error_scale_is_not_set_by_the_worst_method():
    d = explore.DEFAULT_VIEW
    iv = explore.sample_surface(d["family"], d["surface_seed"])
    mask = explore.sample_mask(d["regime"], d["mask_seed"])
    view = explore.score_surface(iv, explore.quotes(iv, mask, d["noise_bp"], d["mask_seed"]),
                                 ("best", "interp", "cnn"))
    worst = max(float(np.nanmax(v.abs_err)) for v in view.methods.values())
    low, high = view.error_range()
    assert low == 0 and high < worst
    fig = figures.surface_grid(view).to_dict()
    assert fig["layout"]["coloraxis2"]["cmax"] == pytest.approx(high)
    assert lightest_at_zero([list(s) for s in fig["layout"]["coloraxis2"]["colorscale"]])


# ----------------------------------------------------------------------------- item 4: dark mode

@pytest.mark.parametrize("dark", [False, True])
def test_truth_and_quote_colours_stand_out_on_their_theme(dark):
    truth, quote = theme_colours(dark)
    background = DARK_BG if dark else LIGHT_BG
    assert contrast(truth, background) >= 7 and contrast(quote, background) >= 4.5
    cut = {"x": K_GRID, "truth": np.full(17, 0.2), "quote_x": K_GRID[:3], "quote_iv": np.full(3, 0.2),
           "methods": {}}
    fig = figures.slice_figure(cut, "k", "t", dark=dark).to_dict()
    line = next(t for t in fig["data"] if t["name"] == "truth")
    assert line["line"]["color"] == truth


def test_maturity_marker_scale_is_visible_on_both_backgrounds():
    for _, colour in T_SCALE:
        assert contrast(colour, LIGHT_BG) >= 2.5 and contrast(colour, DARK_BG) >= 2.5, colour


# ----------------------------------------------------------------------------- item 5 and 9: first views

def test_explorer_first_view_has_quotes_on_its_smile_and_the_strongest_rival():
    from streamlit.testing.v1 import AppTest

    assert "vae" in explore.DEFAULT_METHODS
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/1_explorer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    figs = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    quotes = next(t for t in figs["smile"]["data"] if t.get("name") == "quotes")
    assert len(array(quotes["x"])) > 0, "the first smile has quote markers"
    assert len(array(next(t for t in figs["term"]["data"] if t.get("name") == "quotes")["x"])) > 0
    scores = at.dataframe[0].value.set_index("method")[f"missing RMSE ({numbers.VOL_UNIT})"].sort_values()
    verdict = (list(at.success) + list(at.info))[0].value
    assert scores.index[1] in verdict and "strongest rival" in verdict


def test_landing_page_lists_every_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    labels = {link.proto.label for link in at.get("page_link")}
    assert {"Repair explorer", "Benchmark", "Diagnostics", "Your quotes"} <= labels
    # A page file added later gets its line too (app.py's PAGE_NOTES), not only these four.
    assert len(labels) >= len(list((ROOT / "pages").glob("*.py")))


# ----------------------------------------------------------------------------- item 8: benchmark bars

def test_benchmark_bars_are_linear_by_default():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/2_benchmark.py").run()
    assert not at.exception
    assert at.toggle(key="bars_log").value is False
    bars = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.key == "rmse_bars")
    assert bars["layout"]["yaxis"].get("type", "linear") == "linear"


# ----------------------------------------------------------------------------- the views a quant expects

def test_core_desk_views_of_a_chain():
    from core.engine.arbitrage import g_field
    from core.engine.grid import iv_to_w
    from core.quotes.workflow import repair_quotes

    out = repair_quotes(ROOT / "samples" / "quotes_iv.csv", method="best", stale=False)
    fan = out.fan()
    np.testing.assert_allclose(fan["w"], fan["iv"] ** 2 * fan["T"])
    atm = out.atm()
    j = int(np.argmin(np.abs(K_GRID)))
    np.testing.assert_allclose(atm["atm_iv"], out.result.iv[:, j])
    np.testing.assert_allclose(atm["atm_skew"], (out.result.iv[:, j + 1] - out.result.iv[:, j - 1])
                               / (K_GRID[j + 1] - K_GRID[j - 1]))
    q, label = out.band()
    assert label == "conformal 95 % band"
    np.testing.assert_allclose(atm["atm_half_width"], q * out.result.sd[:, j])
    dens = out.density()
    np.testing.assert_allclose(dens["g"].to_numpy().reshape(13, 15), g_field(iv_to_w(out.result.iv)))


def test_quotes_page_desk_views_and_downloads():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/4_quotes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    figs = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    fan = figs["quotes_fan"]
    assert {t["yaxis"] for t in fan["data"]} == {"y", "y2"}, "w(k) fan and iv by maturity"
    assert sum(t.get("showlegend", True) for t in fan["data"]) == len(T_GRID), "one line per maturity"
    assert fan["layout"]["yaxis"]["title"]["text"].startswith("total variance")
    atm = figs["quotes_atm"]
    assert {t["name"] for t in atm["data"]} >= {"ATM vol", "ATM skew"}
    assert any(t.get("fill") == "toself" for t in atm["data"]), "bands"
    assert figs["quotes_density"]["layout"]["yaxis"]["title"]["text"] == "g(k)"
    names = {t["name"] for t in figs["quotes_compare_smiles"]["data"]}
    assert {"Best", "VAE", "SVI", "quotes (mid, bid/ask)"} <= names
    params = [df.value for df in at.dataframe if {"a", "b", "rho", "m", "sigma"} <= set(df.value.columns)]
    assert params and len(params[0]) == len(T_GRID)
    assert len(at.get("download_button")) == 7


@pytest.mark.parametrize("page, keys", [(None, {"dl_overview_results"}),
                                        ("pages/1_explorer.py", {"dl_surfaces", "dl_scores"}),
                                        ("pages/2_benchmark.py", {"dl_rmse", "dl_tables", "dl_benchmark"}),
                                        ("pages/3_diagnostics.py", {"dl_cell"})])
def test_downloads_on_every_page(page, keys):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    found = {b.key for b in at.get("download_button")}
    assert keys <= found, found


def test_explorer_desk_views_on_request():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/1_explorer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    keys = {el.key for el in at.get("plotly_chart")}
    assert not keys & {"explorer_fan", "explorer_atm", "explorer_density"}, "off by default: the rerun budget"
    at.toggle(key="desk_views").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    method = at.selectbox(key="desk_method").value
    figs = {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}
    fan = figs["explorer_fan"]
    assert sum(t.get("showlegend", True) for t in fan["data"]) == len(T_GRID), "one w(k) line per maturity"
    atm = figs["explorer_atm"]
    assert {t["name"] for t in atm["data"]} >= {"ATM vol", "ATM skew"}
    if method in ("best", "vae", "cnn"):   # a method with an sd draws its bands
        assert any(t.get("fill") == "toself" for t in atm["data"])
    assert figs["explorer_density"]["layout"]["yaxis"]["title"]["text"] == "g(k)"
    params = [df.value for df in at.dataframe if {"a", "b", "rho", "m", "sigma"} <= set(df.value.columns)]
    assert params and len(params[0]) == len(T_GRID)
    # The ATM vol drawn is the repair's own at k = 0.
    j = int(np.argmin(np.abs(K_GRID)))
    surface = figs["surface_grid"]
    repaired = next(t for t in surface["data"] if t.get("name") == method_label(method))
    atm_line = next(t for t in atm["data"] if t["name"] == "ATM vol")
    np.testing.assert_allclose(array(atm_line["y"]), array(repaired["z"])[:, j])


def test_benchmark_tables_download_every_table_at_full_precision():
    from ui.presenters import report

    result = report.load_benchmark()
    tables = report.benchmark_tables(result)
    assert set(tables) >= {"rmse.csv", "projections.csv", "uncertainty.csv", "stale_auc.csv", "downstream_svi.csv",
                           "lofo.csv", "outside.csv"}
    first = result["cells"][0]
    rmse = tables["rmse.csv"].set_index(["cell", "method"])
    for m, score in first["rmse"].items():
        assert rmse.loc[(report.cell_label(first), m), "rmse_mean"] == score["mean"]
        assert rmse.loc[(report.cell_label(first), m), "rmse_se"] == score["se"]
    unc = tables["uncertainty.csv"].set_index(["cell", "method"])
    assert unc.loc[(report.cell_label(first), "best"), "width95"] == first["diagnostics_by_method"]["best"]["width95"]
    import zipfile

    z = zipfile.ZipFile(io.BytesIO(report.tables_zip(tables)))
    assert sorted(z.namelist()) == sorted(tables)
    assert pd.read_csv(z.open("lofo.csv")).shape == tables["lofo.csv"].shape


def test_explorer_downloads_hold_the_surfaces_and_the_scores_shown():
    d = explore.DEFAULT_VIEW
    iv = explore.sample_surface(d["family"], d["surface_seed"], None)
    mask = explore.sample_mask(d["regime"], d["mask_seed"])
    view = explore.score_surface(iv, explore.quotes(iv, mask, d["noise_bp"], d["mask_seed"]), ("best", "interp"),
                                 None, noise_bp=d["noise_bp"])
    surfaces = view.surfaces_table()
    assert len(surfaces) == len(T_GRID) * len(K_GRID)
    t, k = 4, 11   # row-major: maturity, then k
    row = surfaces.iloc[t * len(K_GRID) + k]
    assert (row["T"], row["k"]) == (T_GRID[t], K_GRID[k]) and row["iv_true"] == iv[t, k]
    assert row["iv_best"] == view.methods["best"].iv[t, k] and row["sd_best"] == view.methods["best"].sd[t, k]
    assert np.isnan(surfaces["sd_interp"]).all(), "interpolation has no sd"
    assert surfaces["quoted"].sum() == mask.sum()
    scores = view.scores_table().set_index("method")
    assert scores.loc["best", "rmse_missing"] == view.methods["best"].rmse_missing
    assert scores.loc["interp", "calendar_raw"] == view.methods["interp"].raw_calendar
