"""Benchmark: the full 2 x 2 from the benchmark JSON (every method at its default projection), the
projections, the uncertainty diagnostics, downstream SVI, leave-one-family-out, and a rerun."""
import json

import pandas as pd
import streamlit as st

import core
from ui import figures, frame, numbers, state
from ui.presenters import explore, report
from ui.style import method_label

METHODS = list(core.METHODS)
BOLD = "font-weight: bold"


def run_panel(shipped_seconds: float | None) -> None:
    """The "Run benchmark" controls; a finished run is cached and selected in the sidebar."""
    with st.expander("Run the benchmark here", expanded=False):
        took = f" (the shipped run: {shipped_seconds:.0f} s for the 2 × 2 on 2 cores)" if shipped_seconds else ""
        st.caption("Scores every chosen method on the test surfaces of each cell, 200 per cell in the shipped "
                   f"results{took}. The leave-one-family-out section is not rerun here (`python -m core.benchmark`). "
                   "A finished run is cached and selected in the sidebar.")
        c1, c2, c3 = st.columns([1, 2, 1])
        n_test = c1.selectbox("Surfaces per cell", [20, 50, 100, 200], index=1, key="bench_n")
        run_methods = c2.multiselect("Methods", METHODS, METHODS, key="bench_methods", format_func=method_label)
        c3.write("")
        if not c3.button("Run benchmark", type="primary", key="bench_run", disabled=not run_methods):
            return
        weights = explore.cnn_weights_path()
        key = (int(n_test), tuple(run_methods), state.weights_key())
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


def styled(rows: list, bold: list, index, kinds: dict | None = None, names: dict | None = None):
    """A table of ``rows`` indexed by ``index``, the entries flagged in ``bold`` (same keys) in bold;
    columns named by ``names``, else by the method's label; numbers written by ui.numbers, each
    column as its kind in ``kinds`` (keyed by the rows' own column names)."""
    table = numbers.text_frame(pd.DataFrame(rows), kinds or {}).set_index(index)
    flags = pd.DataFrame(bold).reindex(columns=table.columns).map(lambda b: b is True)
    flags.index = table.index
    table.columns = flags.columns = [(names or {}).get(c, method_label(c)) for c in table.columns]
    style = table.style.apply(lambda _: flags.map(lambda b: BOLD if b else ""), axis=None)
    return style


def bold_table(result: dict, key: str):
    """The ``key`` score table ("rmse", "downstream_svi"): best in row and ties in bold."""
    rows, bold = report.score_table(result, key)
    return styled(rows, bold, "cell")


def verdicts(result: dict, key: str) -> None:
    """One plain sentence per cell: does Best win by more than one SE?"""
    if report.BEST not in report.result_methods(result):
        st.info(f"{method_label(report.BEST)} is not in these results.")
        return
    found = report.best_verdicts(result, key, label=method_label)
    summary = report.verdict_summary(found, label=method_label)
    (st.success if all(v["status"] == "wins" for v in found) else st.warning)(summary)
    st.markdown("\n".join(f"- **{v['label']}**: {v['text']}" for v in found))


def headline(result: dict) -> None:
    st.subheader("Missing-point RMSE (each method at its default projection)")
    defaults = ", ".join(method_label(m) for m in result["cells"][0].get("full_default", [])) or "none"
    st.caption(f"Mean ± SE over test surfaces, in {numbers.VOL_UNIT} (vol points: 100 × implied vol). Each method is scored after its own default "
               f"projection: full (butterfly + calendar) for {defaults}, calendar for the others. **Bold**: the best "
               "in the row and every method within one SE of it (the larger of the two SEs).")
    st.table(bold_table(result, "rmse"))
    verdicts(result, "rmse")
    # Linear by default: bar lengths are then ratios of RMSE; the log scale is a choice for small bars.
    log = st.toggle("Log scale", value=False, key="bars_log")
    st.plotly_chart(figures.score_bars(report.score_series(result, "rmse"),
                                       "Missing-point RMSE by cell (error bars: ±1 SE)", METHODS, log=log),
                    key="rmse_bars")


def projections(result: dict) -> None:
    st.subheader("What the projections cost and remove")
    rows = report.projection_rows(result)
    if not any(pd.notna(r["rmse_full"]) for r in rows):
        st.info("These results carry no calendar-vs-full comparison (run `python -m core.benchmark`).")
        return
    table = pd.DataFrame([{
        "cell": r["cell"], "method": method_label(r["method"]), "default": r["default"],
        "RMSE calendar": report.fmt_score(r["rmse_calendar"], r["rmse_calendar_se"]),
        "RMSE full": report.fmt_score(r["rmse_full"], r["rmse_full_se"]),
        "full − calendar": r["full_minus_calendar"],
        "g(k)<0 % raw → calendar → full": " → ".join(numbers.number(100 * r[k])
                                                      for k in ("g_raw", "g_calendar", "g_full")),
        "calendar raw": r["calendar_raw"], "calendar after full": r["calendar_after_full"],
    } for r in rows])
    st.table(numbers.text_frame(table, {"full − calendar": numbers.SIGNED_VOL, "calendar raw": numbers.RATE,
                                        "calendar after full": numbers.RATE}).set_index(["cell", "method"]))
    st.caption(f"RMSE ({numbers.VOL_UNIT}) after the calendar projection alone and after the full projection (butterfly and calendar "
               "arbitrage removed). g(k) < 0: share of interior nodes with a negative density, on the raw output, "
               "after the calendar projection and after the full one; calendar: share of (T, T+1) edges where w falls.")
    st.markdown("\n".join(f"- {note}" for note in report.projection_notes(result, method_label)))


def uncertainty(result: dict) -> None:
    st.subheader("Uncertainty and stale quotes")
    rows = report.diagnostics_table(result)
    if rows:
        table = pd.DataFrame(rows)
        table["method"] = table["method"].map(method_label)
        st.table(numbers.text_frame(table, report.UNCERTAINTY_KINDS).set_index(["cell", "method"]))
        st.caption("Methods with a predictive sd. cov80 / cov95: share of missing cells inside the method's own "
                   "80 % / 95 % interval around its default-projected repair (conformal for Best, Gaussian ±z·sd "
                   "otherwise); width: mean full width of that interval; err–sd corr: correlation of |error| with "
                   "sd; stale AUC: the method's stale-quote score (below).")
        notes = report.coverage_notes(result, method_label)
        st.markdown("\n".join(f"- {note}" for note in notes))
    else:
        st.info("No method in these results has a predictive sd.")
    rows, bold = report.metric_table(result, "stale_auc")
    st.markdown("**Stale-quote AUC, every method**")
    st.table(styled(rows, bold, "cell", {m: numbers.RATIO for m in report.result_methods(result)}))
    st.caption("8 % of each surface's quotes moved by ±50–110 bp and the method rerun; AUC of its stale score "
               "(Best: its leave-one-out likelihood ratio; the others: |quote − raw repair|) separating the stale "
               "quotes from the clean ones. Bold: the highest in the row.")


def downstream(result: dict) -> None:
    st.subheader("Downstream SVI")
    st.caption("Per-slice SVI fitted to each full repaired surface, calendar-projected, scored on the missing cells.")
    st.table(bold_table(result, "downstream_svi"))
    if report.BEST in report.result_methods(result):
        found = report.best_verdicts(result, "downstream_svi", label=method_label)
        (st.success if all(v["status"] == "wins" for v in found) else st.warning)(
            "Downstream SVI: " + report.verdict_summary(found, label=method_label))


def side_section(title: str, present: bool, missing: str, table, caption: str, notes: list) -> None:
    """One of the benchmark's side sections (leave one family out, outside the prior): its table,
    caption and notes, or a line saying the results have none. ``table``: called only when present."""
    st.subheader(title)
    if not present:
        st.info(f"These results have no {missing}: `python -m core.benchmark` writes it "
                "(a run from this page does not).")
        return
    st.table(table())
    st.caption(caption)
    st.markdown("\n".join(f"- {note}" for note in notes))


def lofo(result: dict) -> None:
    best = method_label(report.BEST)
    names = {"best": f"{best} (every family)", "best_lofo": f"{best} without the family"}
    present = bool(report.lofo_blocks(result))
    side_section(
        "Leave one family out", present, "leave-one-family-out section",
        lambda: styled(*report.lofo_table(result), ["held out", "cell"],
                       {"cov80": numbers.RATIO, "cov95": numbers.RATIO}, names),
        "Best refitted without one family (weights/best_lofo_<family>.pt) and scored on that family's test "
        "cells, beside the classical baselines and Best trained on every family. RMSE mean ± SE after each "
        "method's default projection; cov80 / cov95: coverage of the held-out model's conformal intervals "
        "(nominal 0.80 / 0.95). Bold: the best in the row and ties within one SE among the models that "
        "never saw the family; Best on every family saw it and is there for reference, never bold. Every "
        "prior, the held-out ones too, holds Best's broad extended-SSVI component, whose ranges contain "
        "the SSVI family's: held-out SSVI is an unseen family, not an unseen form.",
        report.lofo_notes(result, method_label) if present else [])


def outside(result: dict) -> None:
    present = bool(report.outside_cells(result))
    side_section(
        "Outside the prior", present, "section on families Best never saw",
        lambda: styled(*report.outside_table(result), ["cell"],
                       {"× classical": numbers.RATIO, "cov80": numbers.RATIO, "cov95": numbers.RATIO}, {}),
        "Families no prior of Best was ever fitted on (Merton jump-diffusion, a lognormal regime mixture) and "
        "a liquidity-shaped mask (strikes quoted out to a band that widens like √T; the wings, and most of "
        "the short end, never quoted), scored with the shipped weights. RMSE mean ± SE after each method's "
        "default projection; × classical: Best's RMSE over the best classical baseline's; cov80 / cov95: "
        "coverage of Best's conformal intervals (nominal 0.80 / 0.95). Bold: the best in the row and ties "
        "within one SE.",
        report.outside_notes(result, method_label) if present else [])


def main() -> None:
    st.title("Benchmark: the 2 × 2 and real chains")
    result, source = state.results()
    try:
        shipped_seconds = state.shipped_results().get("seconds", {}).get("total")
    except ValueError:
        shipped_seconds = None
    run_panel(shipped_seconds)
    if result is not None:
        for method, why in (result.get("skipped") or {}).items():
            st.warning(f"{method_label(method)} was left out of this run: {why}")
        st.caption(f"Showing {source}.")
        headline(result)
        projections(result)
        uncertainty(result)
        downstream(result)
        lofo(result)
        outside(result)
        downloads(result)
    real_chains()      # shipped results of a run too long for the page's button


def real_chains() -> None:
    """The real-chain benchmark (results/real_benchmark.json): held-out RMSE per chain x protocol and
    method, the lowest marked, and where the recommended chain method loses."""
    from core.chain.methods import DEFAULT_CHAIN_METHOD
    from ui.presenters import real

    st.subheader(f"Real chains: held-out RMSE ({numbers.VOL_UNIT})")
    try:
        result = real.load_real()
    except ValueError as exc:
        st.info(str(exc))
        return
    table = real.rmse_frame(result)
    methods = [m for m in result["config"]["methods"] if m in table.columns]
    shown = table.set_index(["chain", "protocol"])
    bold = shown["lowest"]
    # rmse_frame is in vol points already: written as plain numbers, in the tables' decimals.
    st.table(numbers.text_frame(shown[methods], {m: numbers.RATIO for m in methods}).style.apply(
        lambda row: ["font-weight: bold" if m == bold[row.name] else "" for m in row.index], axis=1))
    lost = real.losses(result, DEFAULT_CHAIN_METHOD)
    st.caption(f"Mean over draws or hidden expiries; bold: the lowest in the row. `{DEFAULT_CHAIN_METHOD}` is the "
               f"default with `--chain`; ah (QuantLib's Andreasen–Huge) and svi_fit are the outside baselines. "
               f"Command: `python -m core.benchmark --real DIR --json results/real_benchmark.json`.")
    sampled_note = real.sampled(result)
    if sampled_note:
        st.caption(sampled_note)
    surface_note = real.surface_only(result, DEFAULT_CHAIN_METHOD)
    if surface_note:
        st.caption(surface_note)
    if lost:
        st.markdown(f"**Where {DEFAULT_CHAIN_METHOD} loses by more than 5 %:**\n" + "\n".join(f"- {x}" for x in lost))
    st.download_button("real_benchmark.json", lambda: json.dumps(result) + "\n", file_name="real_benchmark.json",
                       mime="application/json", key="dl_real_benchmark")


def downloads(result: dict) -> None:
    st.subheader("Downloads")
    rows, _ = report.score_table(result, "rmse")
    left, mid, right = st.columns(3)
    left.download_button("rmse.csv", pd.DataFrame(rows).to_csv(index=False), file_name="rmse.csv", mime="text/csv",
                         key="dl_rmse")
    # A callable: the zip is built on click, not on every rerun.
    mid.download_button("tables.zip", lambda: report.tables_zip(report.benchmark_tables(result)),
                        file_name="benchmark_tables.zip", mime="application/zip", key="dl_tables")
    right.download_button("benchmark.json", lambda: json.dumps(result) + "\n", file_name="benchmark.json",
                          mime="application/json", key="dl_benchmark")
    st.caption(f"rmse: the headline table as shown (mean ± SE in {numbers.VOL_UNIT}) · tables.zip: every table on "
               "this page as a CSV at full precision (vols in implied-vol units, rates as fractions) · "
               "benchmark.json: every number on this page, in the format `python -m core.benchmark` writes.")


if frame.inside():
    main()
else:   # Streamlit's pages/ discovery ran this file: see ui/frame.py
    frame.hand_over()
