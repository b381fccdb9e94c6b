"""The workbench's frame: navigation, the shared sidebar, and the landing page.

Run with ``streamlit run app.py``. Pages live in pages/; they call core and draw.
"""
# One thread unless the user says otherwise (core.settings), set before torch loads its OpenMP
# runtime: the app repairs one surface at a time, where threads only add overhead. Once per
# process: this file runs on every rerun, and threadpoolctl's scan of the loaded libraries cost
# 5-7 ms of each explorer rerun.
from core.settings import ensure_thread_policy

ensure_thread_policy()

import streamlit as st

st.set_page_config(page_title="Vol-surface repair workbench", page_icon="📈", layout="wide")

from ui import figures, frame, numbers, state
from ui.presenters import report
from ui.style import method_label


def overview() -> None:
    st.title("Volatility-surface repair workbench")
    st.markdown(
        "A quoted implied-vol surface is never a full rectangle: wings go unquoted, broker stripes drop "
        "out and what is left carries noise. *Surface repair* fills the missing cells of the "
        "(maturity × log-moneyness) grid from the quotes that remain, and should give back a surface a "
        "desk can calibrate to: close to the truth, free of calendar and butterfly arbitrage, with an "
        "honest error bar. This workbench repairs synthetic surfaces with known truth, so every repair "
        "— interpolation, per-slice SVI, interpolation then SVI, the post's CNN, our Bayesian repair "
        "*Best* and whatever comes next — can be scored.")

    result, source = state.results()
    st.subheader("The 2 × 2 at a glance")
    if result is not None:
        st.caption(f"Missing-point RMSE in {numbers.VOL_UNIT} (vol points: 100 × implied vol), mean ± SE over test surfaces, each method at its "
                   f"default projection ({source}). **Bold**: the best in the cell and every method within one SE "
                   "of it.")
        if report.BEST in report.result_methods(result):
            found = report.best_verdicts(result, label=method_label)
            (st.success if all(v["status"] == "wins" for v in found) else st.warning)(
                report.verdict_summary(found, label=method_label))
        cells = report.headline(result)
        for row_start in range(0, len(cells), 2):
            columns = st.columns(2)
            for column, cell in zip(columns, cells[row_start:row_start + 2]):
                with column.container(border=True):
                    obs = cell["observed_fraction"]
                    st.markdown(f"**{cell['label']}**" + (f" · {obs:.0%} quoted" if obs is not None else ""))
                    st.markdown("  \n".join(
                        (f"**{method_label(e['method'])}: {e['text']}**" if e["best"]
                         else f"{method_label(e['method'])}: {e['text']}") for e in cell["entries"]))

        st.download_button("benchmark.json", lambda: _results_json(result), file_name="benchmark.json",
                           mime="application/json", key="dl_overview_results")

    st.subheader("Pages")
    columns = st.columns(2)
    for i, (page, text) in enumerate(PAGE_NOTES):
        with columns[i % 2]:
            st.page_link(page, label=page.title, icon=page.icon)
            st.caption(text)

    st.subheader("The shipped models")
    best_tab, cnn_tab = st.tabs(["Best (weights/best.pt)", "CNN (weights/cnn.pt)"])
    with best_tab:
        best_manifest()
    with cnn_tab:
        cnn_manifest()


def _results_json(result: dict) -> str:
    import json  # here, not at the top: the landing page's imports stay minimal for a fast first paint

    return json.dumps(result) + "\n"


def _facts_table(facts: dict) -> str:
    # A markdown table, not st.table: the landing page stays free of pandas (~1 s of cold start).
    return "| manifest | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in facts.items())


def best_manifest() -> None:
    try:
        manifest = state.manifest("best")
    except ValueError as exc:
        st.warning(f"No manifest of Best to show: {exc}. The sidebar says whether Best itself loads.")
        return
    left, right = st.columns([1, 1])
    left.markdown(_facts_table(report.best_manifest_summary(manifest)))
    rows = report.validation_rows(manifest)
    if rows:
        right.markdown(f"**Validation** (own seeds; RMSE in {numbers.VOL_UNIT} after the full projection, coverage "
                       "of the conformal intervals)")
        right.markdown("| cell | RMSE | cov80 | cov95 |\n|---|---|---|---|\n" + "\n".join(
            f"| {r['cell']} | {r['rmse']} | {numbers.ratio(r['cov80'])} | {numbers.ratio(r['cov95'])} |" for r in rows))
    conformal = report.conformal_rows(manifest)
    if conformal:
        right.markdown("**Conformal multipliers**: the band's half-width is q × sd at each level; the Gaussian "
                       "z is what a ±z·sd band would use")
        right.markdown("| level | q (conformal) | Gaussian z |\n|---|---|---|\n" + "\n".join(
            f"| {100 * r['level']:g} % | {numbers.ratio(r['q'])} | {numbers.ratio(r['gaussian_z'])} |" for r in conformal))
    with st.expander("Full manifest (weights/best.json)"):
        st.json(manifest, expanded=False)


def cnn_manifest() -> None:
    try:
        manifest = state.manifest("cnn")
    except ValueError as exc:
        st.warning(f"No CNN manifest to show: {exc}. The sidebar says whether the CNN itself loads.")
        return
    left, right = st.columns([1, 1])
    left.markdown(_facts_table(report.manifest_summary(manifest)))
    if manifest.get("history", {}).get("val_rmse_iv"):
        right.plotly_chart(figures.validation_curve(manifest["history"]), key="val_curve")
    with st.expander("Full manifest (weights/cnn.json)"):
        st.json(manifest, expanded=False)


home = st.Page(overview, title="Overview", icon=":material/home:", default=True)
EXPLORER = st.Page("pages/1_explorer.py", title="Repair explorer", icon=":material/search:",
                   url_path="explorer")
BENCHMARK = st.Page("pages/2_benchmark.py", title="Benchmark", icon=":material/bar_chart:", url_path="benchmark")
DIAGNOSTICS = st.Page("pages/3_diagnostics.py", title="Diagnostics", icon=":material/troubleshoot:",
                      url_path="diagnostics")

QUOTES = st.Page("pages/4_quotes.py", title="Your quotes", icon=":material/upload_file:", url_path="quotes")

# Every page but this one, with what it is for: the landing page lists each (a test checks that
# none is left out), so a page added to the navigation gets its line here too.
PAGE_NOTES = [
    (EXPLORER, ("One surface: sample or draw it, choose or draw the mask, compare every repair side by side with "
                "its errors, calibrated bands, stale-quote scores, smiles and arbitrage scores.")),
    (BENCHMARK, ("The full 2 × 2: RMSE ± SE and where Best does or does not win, the projections, coverage, stale "
                 "AUC, downstream SVI and leave-one-family-out; rerun it here.")),
    (DIAGNOSTICS, ("Per cell: reliability of every method's intervals, error vs sd, g(k) < 0 and calendar maps, "
                   "stale-quote ROC.")),
    (QUOTES, ("Your own option chain (implied vols or prices, CSV or Parquet): what was read, the repair with its "
              "band and extrapolated regions marked, stale-quote flags, downloads.")),
]
page = st.navigation([home] + [p for p, _ in PAGE_NOTES])
try:
    with frame.running():
        page.run()
finally:
    # After the page: the sidebar's CNN check imports torch (~3 s cold), and the page should not wait.
    # Pages return early on bad input instead of calling st.stop(), which would end this frame too
    # (and drop the sidebar's widget state); the finally keeps the sidebar when a page raises.
    state.sidebar()
