"""Your quotes: upload an option chain (or load a sample), see what was used, repair it, download."""
import streamlit as st

import core
from core.quotes.read import COLUMNS_HELP, MAX_FILE_BYTES, MAX_ROWS
from ui import frame, narrow, numbers, state
from ui import quote_figures as figs
from ui.style import FLAGGED_COLUMNS, method_label
from ui.text import plain

UPLOAD, SAMPLE_IV, SAMPLE_PRICES = "Upload a file", "Sample: implied vols", "Sample: prices with dates"
METHODS = list(core.METHODS)
PREVIEW_COLUMNS = ["row", "status", "reason", "expiry", "T", "strike", "forward", "type", "k", "price_input", "bid",
                   "ask", "iv", "spread_iv", "iv_vendor"]


# How ui.numbers writes the quote tables' number columns, by the quote table's column names; vol
# columns are renamed with their unit (vol points, as on the residual chart).
QUOTE_KINDS = {"row": numbers.COUNT, "T": numbers.RATIO, "strike": numbers.RATIO, "forward": numbers.RATIO,
               "k": numbers.RATIO, "price_input": numbers.RATIO, "bid": numbers.RATIO, "ask": numbers.RATIO,
               "iv": numbers.VOL, "spread_iv": numbers.VOL, "iv_vendor": numbers.VOL, "iv_leave_out": numbers.VOL,
               "iv_repaired": numbers.VOL, "residual": numbers.SIGNED_VOL, "stale_score": numbers.RATIO}
# The several-methods table (core.quotes.workflow.compare_table) as shown, and how its numbers are written.
COMPARE_NAMES = {"n_used": "quotes used", "rmse_iv": f"RMSE to mid ({numbers.VOL_UNIT})",
                 "n_bid_ask": "with bid–ask", "inside_bid_ask": "inside bid–ask"}
COMPARE_KINDS = {"quotes used": numbers.COUNT, COMPARE_NAMES["rmse_iv"]: numbers.VOL, "with bid–ask": numbers.COUNT,
                 "inside bid–ask": numbers.RATE}
VOL_NAMES = {c: f"{c} ({numbers.VOL_UNIT})" for c, kind in QUOTE_KINDS.items() if kind in (numbers.VOL, numbers.SIGNED_VOL)}


def quote_frame(table, widths: dict | None = None) -> tuple:
    """(frame, column config) of quote-table columns for st.dataframe, numbers as ui.numbers writes
    them: vols scaled to vol points and renamed with the unit."""
    kinds = {c: k for c, k in QUOTE_KINDS.items() if c in table.columns}
    shown = numbers.scaled(table, kinds).rename(columns=VOL_NAMES)
    kinds = {VOL_NAMES.get(c, c): k for c, k in kinds.items()}
    return shown, numbers.columns(kinds, widths={VOL_NAMES.get(c, c): w for c, w in (widths or {}).items()})


def flagged_view(flagged):
    """The flagged quotes for the table (their columns with any value)."""
    show = [c for c in FLAGGED_COLUMNS if c in flagged.columns and flagged[c].notna().any()]
    return flagged[show]


def flagged_frame(flagged) -> tuple:
    """(frame, column config) of the flagged quotes: each column at its FLAGGED_COLUMNS width under
    its short header, the full name (vols with their unit) as its tooltip."""
    table = flagged_view(flagged)
    shown, config = quote_frame(table, widths={c: FLAGGED_COLUMNS[c][1] for c in table.columns})
    for name, column in zip(shown.columns, table.columns):
        label, width = FLAGGED_COLUMNS[column]
        config[name] = (config.get(name) or st.column_config.Column(width=width)) | {"label": label, "help": name}
    return shown, config


def desk_views(result, data: bytes, name: str, method: str, valuation_date: str, T: float, labels: dict,
               dark: bool) -> None:
    """The views a vol quant expects: the total-variance fan, ATM vol and skew, g(k) per maturity,
    the per-expiry SVI parameters, and several methods on this chain (at the expiry chosen above)."""
    st.subheader("The desk's views")
    band = result.band()
    fan_tab, atm_tab, g_tab, params_tab, compare_tab = st.tabs(
        ["Total variance fan", "ATM vol and skew", "Density g(k)", "SVI parameters", "Compare methods"])
    with fan_tab:
        st.plotly_chart(figs.variance_fan(result.fan(), method), key="quotes_fan")
        st.caption("w = iv² T against k, one line per grid maturity: lines that cross would be calendar arbitrage.")
    with atm_tab:
        st.plotly_chart(figs.atm_terms(result.atm(), method, band[1] if band else None, dark), key="quotes_atm")
        st.caption("ATM vol at k = 0 and ATM skew d iv / d k (central difference over k = ±0.056); open markers: "
                   "extrapolated maturities. The skew band treats the two nodes' bands as independent.")
    with g_tab:
        st.plotly_chart(figs.density_lines(result.density(), method), key="quotes_density")
        st.caption("Gatheral–Roper g(k) on the grid's interior k: proportional to the risk-neutral density in k; "
                   "below 0 (red ×) is butterfly arbitrage.")
    with params_tab:
        frame, config = numbers.svi_frame(result.svi_table)
        st.dataframe(frame, hide_index=True, key="quotes_params", width="stretch", column_config=config,
                     placeholder=numbers.MISSING)
        st.caption("Raw SVI per grid maturity, fitted to the repaired slice: w(k) = a + b (ρ (k − m) + "
                   f"√((k − m)² + σ²)); rmse_iv: the fit's error over the slice in {numbers.VOL_UNIT}. Also in "
                   "svi_params.csv (in implied-vol units).")
    with compare_tab:
        others = st.multiselect("Methods on this chain", METHODS,
                                list(dict.fromkeys([method] + [m for m in ("vae", "svi") if m in METHODS])),
                                key="quotes_compare", format_func=method_label)
        repairs = {}
        for m in others:
            try:
                repairs[m] = run_repair(data, name, m, None, valuation_date, False)
            except Exception as exc:  # noqa: BLE001 - one method failing (weights) leaves the others
                st.warning(f"{method_label(m)} could not run here: {plain(exc)}")
        if repairs:
            from core.quotes.workflow import compare_table

            date = labels[T].partition(" · ")[2] or None
            st.plotly_chart(figs.compare_smiles({m: r.smile(T)[0] for m, r in repairs.items()}, result.smile(T)[1],
                                                T, METHODS, date, dark), key="quotes_compare_smiles")
            st.caption("Each method's repair of this chain (its default projection) at the expiry chosen above, "
                       "over the quotes with their bid/ask.")
            table = compare_table(repairs).rename(columns=COMPARE_NAMES)
            table["method"] = table["method"].map(method_label)
            st.dataframe(numbers.scaled(table, COMPARE_KINDS), hide_index=True, key="quotes_compare_scores",
                         width="stretch", placeholder=numbers.MISSING, column_config=numbers.columns(COMPARE_KINDS))
            st.caption(f"Every used quote of the chain, every expiry: RMSE of quote mid − repair in "
                       f"{numbers.VOL_UNIT}, and the share of the quotes with a bid and an ask whose repair lies "
                       "inside them. In sample: the quotes went into each repair, so this says how closely a "
                       "method honours them, not how well it predicts a quote it did not see.")


def upload_cap_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


@st.cache_data(max_entries=16, show_spinner="Reading, gridding and repairing the quotes…")
def run_repair(data: bytes, name: str, method: str, arbitrage: str | None, valuation_date: str | None, stale: bool):
    from core.quotes.workflow import repair_quotes

    return repair_quotes(data, method=method, name=name, arbitrage=arbitrage, stale=stale,
                         valuation_date=valuation_date or None)


def main() -> None:
    """The page; returns early (no st.stop) on bad input so the frame's sidebar still renders."""
    st.title("Your quotes")
    st.caption("Bring an option chain — one quote per row, as implied vols or as prices — and repair it on the "
               "model grid. Every row is accounted for: used, outside the grid, set aside by rule, or dropped "
               "with its reason.")
    with st.expander("File format and limits"):
        st.code(COLUMNS_HELP, language=None)
        st.markdown(f"Uploads here are capped at **{upload_cap_mb()} MB** (`server.maxUploadSize`); the CLI and "
                    f"the Python API take up to {MAX_FILE_BYTES // 2**20} MiB and {MAX_ROWS:,} rows. Same tables "
                    "from the command line: `python -m core.cli repair QUOTES --method best --out DIR`.")

    left, mid, right = st.columns([2, 1, 1])
    with left:
        source = st.radio("Quotes", [SAMPLE_IV, SAMPLE_PRICES, UPLOAD], horizontal=True, key="quotes_source",
                          help="The samples come from our generators at listed expiries and strikes "
                               "(tools/make_sample_quotes.py).")
        upload = None
        if source == UPLOAD:
            upload = st.file_uploader("CSV or Parquet", type=["csv", "parquet", "pq"], key="quotes_file")
    with mid:
        method = st.selectbox("Method", METHODS, index=METHODS.index(core.DEFAULT_METHOD), key="quotes_method",
                              format_func=method_label)
        arbitrage = st.selectbox("Arbitrage projection", ["method default", "calendar", "full"], key="quotes_arbitrage",
                                 help="calendar: w non-decreasing in T; full: calendar and butterfly.")
    with right:
        valuation_date = st.text_input("Valuation date (if the file has none)", "", key="quotes_valuation",
                                       placeholder="YYYY-MM-DD")
        stale = st.toggle("Stale-quote flags", True, key="quotes_stale",
                          help="Each quote against a repair made without it; flags above a threshold "
                               "calibrated on synthetic chains at a 2 % false-flag rate.")

    if source == UPLOAD:
        if upload is None:
            st.info("Upload a quote file, or pick a sample above.")
            return
        data, name = upload.getvalue(), upload.name
    else:
        from core.quotes.workflow import sample_bytes

        data, name = sample_bytes("implied vols (index chain)" if source == SAMPLE_IV
                                  else "prices with dates (single stock)")

    from core.repairers.weights import WeightsError

    try:
        result = run_repair(data, name, method, None if arbitrage == "method default" else arbitrage,
                            valuation_date.strip(), stale)
    except (ValueError, WeightsError) as exc:
        st.error(plain(exc))   # the message quotes the file name: shown as typed
        return

    # ----------------------------------------------------------------------------- validation
    rep = result.report
    st.subheader("What was read")
    cols = st.columns(5)
    cols[0].metric("rows read", f"{rep.n_rows:,}")
    cols[1].metric("used", f"{rep.n_used:,}")
    cols[2].metric("outside the grid", f"{rep.n_outside:,}")
    cols[3].metric("set aside by rule", f"{rep.n_skipped:,}")
    cols[4].metric("dropped", f"{rep.n_dropped:,}")
    st.caption(f"{plain(name)}: {rep.layout} layout, {rep.kind} quotes on {rep.n_expiries} expiries; "
               f"{int(result.gridded.observed.sum())} of 221 grid nodes quoted.")
    for warning in rep.warnings:
        st.warning(plain(warning))
    for note in rep.notes:          # what was decided about the data: units, forwards, snapshot
        st.info(plain(note))
    read_table = rep.to_frame()
    if len(read_table):   # the reason is the point of this table: give it the room, never truncate it
        st.dataframe(read_table, hide_index=True, key="quotes_report", width="stretch", placeholder=numbers.MISSING,
                     column_config={"status": st.column_config.TextColumn("status", width=70),
                                    "reason": st.column_config.TextColumn("reason", width=330),
                                    "count": st.column_config.NumberColumn("count", width=60),
                                    "rows": st.column_config.TextColumn("rows", width=250)})
    with st.expander("Preview of the quotes as read (first 200 rows)"):
        table = result.quote_table
        shown, config = quote_frame(table[[c for c in PREVIEW_COLUMNS if c in table.columns]].head(200))
        st.dataframe(shown, hide_index=True, key="quotes_preview", width="stretch", column_config=config,
                     placeholder=numbers.MISSING)

    # ----------------------------------------------------------------------------- repair
    st.subheader(f"The repair: {method_label(method)}")
    narrow.plot(figs.grid_panels(result, METHODS), figs.grid_panels(result, METHODS, narrow=True), "quotes_grid")
    n_extrapolated = int(result.grid_table["extrapolated"].sum())
    st.caption(f"Grey-washed nodes marked / are **extrapolated** ({n_extrapolated} of {len(result.grid_table)}): "
               "before the first or after the last quoted expiry, or outside an expiry's quoted strikes. There "
               "the repair is the method's guess, not an interpolation of quotes; grid.csv and quotes.csv carry "
               "an `extrapolated` column. The vol scale spans the quotes and the repair inside the quoted "
               "region; an extrapolated vol beyond it saturates (hover for values).")
    dark = state.dark_mode()
    band = result.band()
    band_name = band[1] if band else None
    expiries = list(result.expiries())
    labels = result.expiry_labels()
    left, right = st.columns(2)
    with left:
        T = st.select_slider("Expiry", expiries, expiries[len(expiries) // 2], format_func=labels.get,
                             key="quotes_expiry")
        curve, quotes = result.smile(T)
        date = labels[T].partition(" · ")[2] or None
        st.plotly_chart(figs.smile(curve, quotes, T, method, METHODS, expiry=date, band=band_name, dark=dark),
                        key="quotes_smile")
    with right:
        k_index = st.select_slider("Log-moneyness node", range(len(core.K_GRID)), len(core.K_GRID) // 2,
                                   format_func=lambda j: f"{core.K_GRID[j]:+.3f}", key="quotes_k")
        st.plotly_chart(figs.term_structure(result.term_structure(k_index), float(core.K_GRID[k_index]), method,
                                            METHODS, band=band_name, dark=dark), key="quotes_term")
    if band:
        st.caption(f"Shaded: {method_label(method)}'s {band_name} (the explorer's band); dotted: extrapolated.")

    desk_views(result, data, name, method, valuation_date.strip(), T, labels, dark)

    # ----------------------------------------------------------------------------- flags
    st.subheader("Stale or bad quotes")
    if result.stale_basis == "none":
        st.info("Stale-quote flags are off.")
    else:
        flagged = result.flagged()
        st.markdown(f"**{len(flagged)}** of {rep.n_used:,} used quotes flagged: score above "
                    f"{result.stale_threshold:.2f} ({result.stale_basis}"
                    f"{'' if result.stale_calibrated else ', default threshold: not calibrated'}).")
        st.plotly_chart(figs.residuals(result.quote_table, method), key="quotes_residuals")
        if len(flagged):
            shown, config = flagged_frame(flagged)
            # A keyed container: the browser layout test finds the table by it (st.dataframe's own
            # key leaves no mark in the page).
            with st.container(key="quotes_flagged_box"):
                st.dataframe(shown, hide_index=True, key="quotes_flagged", width="stretch", column_config=config,
                             placeholder=numbers.MISSING)
            st.caption(f"iv: the quote; iv LOO: the repair without the quote (leave one out); repaired: the repair "
                       f"at the quote; resid.: quote − repair; score: the stale score. Vols and residuals in "
                       f"{numbers.VOL_UNIT} (vol points: 100 × implied vol), as on the residual chart; hover a "
                       "header for its full name.")
    for line in result.notes:
        st.caption(line)

    # ----------------------------------------------------------------------------- downloads
    st.subheader("Downloads")
    from core.quotes.export import download_files

    files = download_files(result)
    cols = st.columns(4)
    for i, (file_name, payload, mime) in enumerate(files):
        cols[i % 4].download_button(file_name, payload, file_name=file_name, mime=mime, key=f"dl_{file_name}")
    st.caption("grid: T, k, iv, sd, method and extrapolated per node · quotes: every input row with its status, "
               "repaired value, residual, stale flag and extrapolated · svi_params: per-slice raw SVI (a, b, ρ, m, σ) of the downstream fit.")


if frame.inside():
    main()
else:   # Streamlit's pages/ discovery ran this file: see ui/frame.py
    frame.hand_over()
