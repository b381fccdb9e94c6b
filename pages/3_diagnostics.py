"""Diagnostics: per benchmark cell, calibration of every method's intervals, arbitrage maps, stale-quote ROC."""
import json

import streamlit as st

import core
from core.engine.grid import K_GRID, T_GRID
from ui import figures, frame, narrow, state
from ui.presenters import explore, report
from ui.style import T_TITLE, method_label

METHODS = list(core.METHODS)


@st.cache_data(show_spinner=False)
def multipliers(methods: tuple, weights: tuple) -> dict:
    """Each method's interval half-width per unit sd at 80 % and 95 % (its own half_width: conformal
    for a calibrated method). ``weights``: state.weights_key(), so new weights invalidate this."""
    out = {}
    for m in methods:
        try:
            out[m] = {level: explore.interval_multiplier(m, level) for level in report.LEVELS}
        except Exception:  # noqa: BLE001 - unknown method or weights missing: that method gets Gaussian edges
            continue
    return out


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
        with_sd = tuple(details.get("err_sd_sample") or {})
        left, right = st.columns(2)
        left.plotly_chart(figures.reliability(details, METHODS), key="reliability")
        points = report.err_sd_points(details, multipliers(with_sd, state.weights_key()))
        right.plotly_chart(figures.err_sd_scatter(points, METHODS), key="err_sd")
        st.caption("Left: share of missing cells inside each method's central interval against its nominal level "
                   "(Best: conformal intervals; the others: Gaussian ±z·sd), around its default-projected repair; "
                   "below the diagonal = overconfident. Right: a sample of up to 1500 missing cells per method; a "
                   "point above its method's dashed (80 %) or dotted (95 %) line falls outside that interval.")
        st.markdown("\n".join(f"- {note}" for note in report.coverage_notes([cell], method_label)))
    else:
        st.info("No method in these results has a predictive sd.")

    st.subheader("Butterfly arbitrage")
    if details.get("g_negative_map"):
        g_maps = [figures.rate_maps({"g(k) < 0": details["g_negative_map"]}, explore.G_K_GRID, T_GRID,
                                    T_TITLE, "Share of test surfaces with g(k) < 0 at each interior node, "
                                    "after the calendar projection alone", narrow=stacked) for stacked in (False, True)]
        narrow.plot(*g_maps, "g_maps")
        st.caption(report.full_projection_note(cell, method_label))

    st.subheader("Calendar arbitrage")
    if details.get("calendar_raw_map"):
        calendar_maps = [figures.rate_maps({"raw": details["calendar_raw_map"],
                                            "projected": details.get("calendar_post_map", {})},
                                           K_GRID, T_GRID[1:], "T of the later slice (years)",
                                           "Share of test surfaces where w falls from T to the next maturity, "
                                           "before and after the calendar projection", narrow=stacked)
                         for stacked in (False, True)]
        narrow.plot(*calendar_maps, "calendar_maps")

    st.subheader("Stale quotes")
    if details.get("stale_roc"):
        aucs = {m: d.get("stale_auc") for m, d in (cell.get("diagnostics_by_method") or {}).items()}
        left, _ = st.columns([3, 2])
        left.plotly_chart(figures.roc(details, aucs, METHODS), key="roc")
        st.caption("8 % of each surface's quotes moved by ±50–110 bp, the method rerun, and each quote scored by "
                   "the method's stale score: Best's leave-one-out likelihood ratio (stale vs noise), "
                   "|quote − repair| (total variance) for the others. A method that reproduces every quote (interpolation) has a "
                   "(rounding-level) zero residual everywhere, hence AUC ≈ 0.5 by construction.")

    st.subheader("Downloads")
    st.download_button("cell.json", lambda: json.dumps(cell) + "\n", file_name="cell.json", mime="application/json",
                       key="dl_cell")
    st.caption("This cell's scores, diagnostics and the per-node maps drawn above, as in the benchmark JSON.")


if frame.inside():
    main()
else:   # Streamlit's pages/ discovery ran this file: see ui/frame.py
    frame.hand_over()
