"""The workbench's frame: navigation, the shared sidebar, and the landing page.

Run with ``streamlit run app.py``. Pages live in pages/; they call core and draw.
"""
import os

# One OpenMP thread unless the user says otherwise, set before scipy or torch load their OpenMP
# runtime. The app repairs one 13 x 17 surface at a time, where threads only add overhead, and on a
# busy 2-core machine scipy 1.17's LinearNDInterpolator with 2 OpenMP threads took 700-950 ms per
# surface against 0.3 ms with 1 (torch's CNN: 100-150 ms against 1-4 ms).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Vol-surface repair workbench", page_icon="📈", layout="wide")

from core import report  # noqa: E402 - after set_page_config, which must come first; torch-free
from ui import figures, state  # noqa: E402
from ui.style import method_label  # noqa: E402


def overview() -> None:
    st.title("Volatility-surface repair workbench")
    st.markdown(
        "A quoted implied-vol surface is never a full rectangle: wings go unquoted, broker stripes drop "
        "out and what is left carries noise. *Surface repair* fills the missing cells of the "
        "(maturity × log-moneyness) grid from the quotes that remain, and should give back a surface a "
        "desk can calibrate to: close to the truth, free of calendar and butterfly arbitrage, with an "
        "honest error bar. This workbench repairs synthetic surfaces with known truth, so every repair "
        "— interpolation, per-slice SVI, the post's CNN and whatever comes next — can be scored.")

    result, source = state.results()
    st.subheader("The 2 × 2 at a glance")
    if result is not None:
        st.caption(f"Missing-point RMSE in implied-vol units, mean ± SE over test surfaces ({source}). "
                   "**Bold**: the best in the cell and every method within one SE of it.")
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

    st.subheader("Pages")
    c1, c2, c3 = st.columns(3)
    with c1:
        st.page_link(EXPLORER, label="Repair explorer", icon=":material/search:")
        st.caption("One surface: sample or draw it, choose or draw the mask, compare every repair side by "
                   "side with its errors, uncertainty, smiles and arbitrage scores.")
    with c2:
        st.page_link(BENCHMARK, label="Benchmark", icon=":material/bar_chart:")
        st.caption("The full 2 × 2: RMSE ± SE, diagnostics and downstream SVI tables; rerun it here.")
    with c3:
        st.page_link(DIAGNOSTICS, label="Diagnostics", icon=":material/troubleshoot:")
        st.caption("Per cell: reliability of the uncertainty head, error vs sd, g(k) < 0 and calendar "
                   "maps, stale-quote ROC.")

    st.subheader("The shipped CNN")
    try:
        manifest = state.manifest()
    except ValueError as exc:
        st.warning(f"No CNN manifest to show: {exc}. The sidebar says whether the CNN itself loads.")
        manifest = None
    if manifest:
        left, right = st.columns([1, 1])
        facts = report.manifest_summary(manifest)
        # A markdown table, not st.table: the landing page stays free of pandas (~1 s of cold start).
        left.markdown("| manifest | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in facts.items()))
        if manifest.get("history", {}).get("val_rmse_iv"):
            right.plotly_chart(figures.validation_curve(manifest["history"]), key="val_curve")
        with st.expander("Full manifest (weights/cnn.json)"):
            st.json(manifest, expanded=False)


home = st.Page(overview, title="Overview", icon=":material/home:", default=True)
EXPLORER = st.Page("pages/1_Repair_explorer.py", title="Repair explorer", icon=":material/search:",
                   url_path="explorer")
BENCHMARK = st.Page("pages/2_Benchmark.py", title="Benchmark", icon=":material/bar_chart:", url_path="benchmark")
DIAGNOSTICS = st.Page("pages/3_Diagnostics.py", title="Diagnostics", icon=":material/troubleshoot:",
                      url_path="diagnostics")

QUOTES = st.Page("pages/4_Your_quotes.py", title="Your quotes", icon=":material/upload_file:", url_path="quotes")

page = st.navigation([home, EXPLORER, BENCHMARK, DIAGNOSTICS, QUOTES])
try:
    page.run()
finally:
    # After the page: the sidebar's CNN check imports torch (~3 s cold), and the page should not wait.
    # Pages return early on bad input instead of calling st.stop(), which would end this frame too
    # (and drop the sidebar's widget state); the finally keeps the sidebar when a page raises.
    state.sidebar()
