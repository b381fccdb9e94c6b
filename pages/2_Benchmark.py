"""Benchmark: the full 2 x 2 from the benchmark JSON, and a rerun with progress."""
import pandas as pd
import streamlit as st

import core
from core import explore, report
from ui import figures, state
from ui.style import method_label

METHODS = list(core.METHODS)


def run_panel() -> None:
    """The "Run benchmark" controls; a finished run is cached and selected in the sidebar."""
    with st.expander("Run the benchmark here", expanded=False):
        st.caption("Scores every chosen method on the test surfaces of each cell (the shipped results use "
                   "200 per cell, ≈ 3 s on 2 cores). A finished run is cached and selected in the sidebar.")
        c1, c2, c3 = st.columns([1, 2, 1])
        n_test = c1.selectbox("Surfaces per cell", [20, 50, 100, 200], index=1, key="bench_n")
        run_methods = c2.multiselect("Methods", METHODS, METHODS, key="bench_methods", format_func=method_label)
        c3.write("")
        if not c3.button("Run benchmark", type="primary", key="bench_run", disabled=not run_methods):
            return
        weights = explore.cnn_weights_path()
        key = (int(n_test), tuple(run_methods), str(weights), state.mtime(weights))
        store = state.run_store()
        if key not in store:
            bar = st.progress(0.0, text="Starting…")

            def progress(done, total, label):
                bar.progress(done / total, text=f"{label} done ({done}/{total} cells)")

            try:
                store[key] = explore.run_benchmark(int(n_test), tuple(run_methods), weights, progress=progress)
            except ValueError as exc:
                st.error(f"The benchmark could not run: {exc}")
                return
        st.session_state[state.RUN_KEY] = store[key]
        st.session_state[state.RESULTS_KEY] = state.LATEST   # the sidebar radio renders after the page
        st.rerun()


def bold_table(result: dict, key: str):
    """The ``key`` score table as a Styler: best in row and ties in bold."""
    rows, bold = report.score_table(result, key)
    frame = pd.DataFrame(rows).set_index("cell")
    flags = pd.DataFrame(bold).set_index("cell")
    frame.columns = [c if c == "obs %" else method_label(c) for c in frame.columns]
    flags.columns = frame.columns
    return frame.style.apply(lambda _: flags.map(lambda b: "font-weight: bold" if b else ""), axis=None)


def main() -> None:
    st.title("Benchmark: the 2 × 2")
    run_panel()
    result, source = state.results()
    if result is None:
        return
    for method, why in (result.get("skipped") or {}).items():
        st.warning(f"{method_label(method)} was left out of this run: {why}")
    st.caption(f"Showing {source}. Missing-point RMSE in implied-vol units, mean ± SE over surfaces. "
               "**Bold**: the best in the row and every method within one SE of it (the larger of the two SEs).")

    st.subheader("Missing-point RMSE")
    st.table(bold_table(result, "rmse"))
    st.plotly_chart(figures.score_bars(report.score_series(result, "rmse"),
                                       "Missing-point RMSE by cell (error bars: ±1 SE)", METHODS), key="rmse_bars")

    st.subheader("Diagnostics")
    st.caption("After the calendar projection. raw / post cal: share of (T, T+1) edges where w falls before / "
               "after it; g(k)<0: share of interior nodes with negative density; cov80 / cov95: share of missing "
               "cells inside the ±1.28 / ±1.96 sd interval (methods with an sd); err–sd corr: correlation of "
               "|error| with sd; stale AUC: the residual as a stale-quote detector. —: does not apply.")
    diag = pd.DataFrame(report.diagnostics_table(result))
    if not diag.empty:
        diag["method"] = diag["method"].map(method_label)
        formats = {c: "{:.2f}" if c.endswith("%") else "{:.3f}" for c in diag.columns if c not in ("cell", "method")}
        formats["mean sd (vol)"] = "{:.4f}"
        st.table(diag.set_index(["cell", "method"]).style.format(formats, na_rep="—"))

    st.subheader("Downstream SVI")
    st.caption("Per-slice SVI fitted to each full repaired surface, calendar-projected, scored on the missing cells.")
    st.table(bold_table(result, "downstream_svi"))


main()
