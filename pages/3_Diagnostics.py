"""Diagnostics: per benchmark cell, calibration of the uncertainty heads, arbitrage maps, stale-quote ROC."""
import streamlit as st

import core
from core import explore, report
from core.grid import K_GRID, T_GRID
from ui import figures, state
from ui.style import T_TITLE

METHODS = list(core.METHODS)


def main() -> None:
    st.title("Diagnostics")
    result, source = state.results()
    if result is None:
        return
    labels = [report.cell_label(c) for c in result["cells"]]
    index = st.selectbox("Benchmark cell", range(len(labels)), format_func=labels.__getitem__, key="diag_cell",
                         index=len(labels) - 1)
    cell = result["cells"][index]
    details = report.cell_details(result, index)
    st.caption(f"{labels[index]}: {cell.get('n', result.get('config', {}).get('n_test', '?'))} test surfaces, "
               f"{cell.get('observed_fraction', float('nan')):.0%} quoted ({source}).")
    if not details:
        st.warning("These results carry no per-cell details (run `python -m core.benchmark` to write them, "
                   "or run the benchmark from the Benchmark page).")
        return

    st.subheader("Uncertainty")
    if details.get("reliability"):
        left, right = st.columns(2)
        left.plotly_chart(figures.reliability(details, METHODS), key="reliability")
        right.plotly_chart(figures.err_sd_scatter(report.err_sd_points(details), METHODS), key="err_sd")
        st.caption("Left: share of missing cells inside the central ±z·sd interval against its nominal level; "
                   "below the diagonal = overconfident. Right: a sample of up to 1500 missing cells; points "
                   "above a dashed line fall outside that interval.")
    else:
        st.info("No method in these results has a predictive sd.")

    st.subheader("Butterfly arbitrage")
    if details.get("g_negative_map"):
        st.plotly_chart(figures.rate_maps({"g(k) < 0": details["g_negative_map"]}, explore.G_K_GRID, T_GRID,
                                          T_TITLE, "Share of test surfaces with g(k) < 0 at each interior node, "
                                          "after the calendar projection"), key="g_maps")

    st.subheader("Calendar arbitrage")
    if details.get("calendar_raw_map"):
        st.plotly_chart(figures.rate_maps({"raw": details["calendar_raw_map"],
                                           "projected": details.get("calendar_post_map", {})},
                                          K_GRID, T_GRID[1:], "T of the later slice (years)",
                                          "Share of test surfaces where w falls from T to the next maturity, "
                                          "before and after the projection"), key="calendar_maps")

    st.subheader("Stale quotes")
    if details.get("stale_roc"):
        aucs = {m: d.get("stale_auc") for m, d in (cell.get("diagnostics_by_method") or {}).items()}
        left, _ = st.columns([3, 2])
        left.plotly_chart(figures.roc(details, aucs, METHODS), key="roc")
        st.caption("8 % of each surface's quotes shifted by ±50–110 bp, the method rerun, and each quote scored "
                   "by |quote − repair| (total variance). A method that reproduces every quote (interpolation) "
                   "has a (rounding-level) zero residual everywhere, hence AUC ≈ 0.5 by construction.")


main()
