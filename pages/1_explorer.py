"""Repair explorer: one surface, its quotes, every chosen repair side by side, and their scores."""
import numpy as np
import pandas as pd
import streamlit as st

import core
from core.engine.grid import K_GRID, T_GRID
from ui import figures, frame, narrow, numbers, state
from ui import quote_figures
from ui.presenters import explore
from ui.style import (
    EDITOR_COLUMN_PX,
    EDITOR_INDEX_PX,
    K_TITLE,
    SCORES_COLUMN_PX,
    T_TITLE,
    editor_k_label,
    method_label,
)

DEFAULT = explore.DEFAULT_VIEW
METHODS = list(core.METHODS)
DEFAULT_METHODS = [m for m in explore.DEFAULT_METHODS if m in METHODS] or METHODS[:3]
FAMILIES = list(explore.FAMILY_LABELS)
T_LABELS = [f"{t:.2f}" for t in T_GRID]
EDITOR_HEIGHT = 35 * (len(T_GRID) + 1) + 3          # every maturity row visible, no inner scroll
# The grid editors come in two halves, k <= 0 over k > 0: an editable column's header carries
# Streamlit's pencil icon, so a column that shows "+0.28" whole is EDITOR_COLUMN_PX wide, and 17 of
# them do not fit the main column at 1280 px (about 775 px with the sidebar open); 9 do.
K_SPLIT = int(np.searchsorted(K_GRID, 0.0, side="right"))
EDITOR_HALVES = (("left", "k ≤ 0", slice(0, K_SPLIT)), ("right", "k > 0", slice(K_SPLIT, None)))
PRESET_LABELS = {"Drop left wing": "− left wing", "Drop right wing": "− right wing",
                 "Drop front maturities": "− front", "Drop long maturities": "− long end",
                 "Drop a broker stripe": "− broker stripe", "Quote every cell": "quote all",
                 "Clear every cell": "clear all"}
K_LABELS = [f"{k:+.3f}" for k in K_GRID]
SCORE_RMSE_MISSING, SCORE_RMSE_ALL = f"missing RMSE ({numbers.VOL_UNIT})", f"all-cell RMSE ({numbers.VOL_UNIT})"
# How ui.numbers writes the scores table's number columns.
SCORE_KINDS = {SCORE_RMSE_MISSING: numbers.VOL, SCORE_RMSE_ALL: numbers.VOL, "g(k)<0 raw": numbers.RATE,
               "g(k)<0 projected": numbers.RATE, "calendar raw": numbers.RATE, "calendar projected": numbers.RATE,
               "band covers (missing)": numbers.RATE}
# Short headers that show whole in SCORES_COLUMN_PX; each column's tooltip gives its full name.
SCORE_LABELS = {SCORE_RMSE_MISSING: "RMSE miss", SCORE_RMSE_ALL: "RMSE all", "g(k)<0 raw": "g<0 raw",
                "g(k)<0 projected": "g<0 proj", "calendar raw": "cal raw", "calendar projected": "cal proj",
                "band covers (missing)": "covers"}


def controls() -> dict:
    """The three columns of controls; returns their values by name."""
    c = {}
    col_surface, col_mask, col_repair = st.columns(3)
    with col_surface:
        st.markdown("**Surface**")
        c["source"] = st.radio("Source", ["Sample", "Draw"], horizontal=True, key="source",
                               help="Sample one from a generator, or edit the true implied-vol grid yourself.")
        c["family"] = st.selectbox("Family", FAMILIES, index=FAMILIES.index(DEFAULT["family"]), key="family",
                                   format_func=explore.FAMILY_LABELS.get)
        c["seed"] = int(st.number_input("Surface seed", 0, 1_000_000, DEFAULT["surface_seed"], key="surface_seed"))
    with col_mask:
        st.markdown("**Missingness**")
        c["regime"] = st.selectbox("Regime", explore.REGIMES, index=explore.REGIMES.index(DEFAULT["regime"]),
                                   key="regime", help="regular ≈ 50 % quoted, adversarial ≈ 18 % (the benchmark's "
                                                      "regimes); none = every cell quoted.")
        c["mask_seed"] = int(st.number_input("Mask and noise seed", 0, 1_000_000, DEFAULT["mask_seed"],
                                             key="mask_seed"))
        c["noise_bp"] = st.slider("Quote noise (bp of vol)", 0.0, 100.0, float(DEFAULT["noise_bp"]), 1.0,
                                  key="noise_bp", help="Base sd of the quote noise; inflated up to 2.5× in the "
                                                       "wings and 1.6× at the front.")
        c["draw_mask"] = st.toggle("Draw the mask", key="draw_mask")
    with col_repair:
        st.markdown("**Repairs**")
        choices = explore.projection_choices()
        c["arbitrage"] = st.radio(
            "Arbitrage projection", choices, horizontal=True, key="arbitrage",
            format_func=lambda choice: explore.projection_label(choice, METHODS, method_label),
            help="method default: each method's own projection; calendar: cumulative max of w along T; "
                 "full: butterfly and calendar arbitrage both removed (a projection onto arbitrage-free prices).")
        c["stale"] = st.toggle("Make some quotes stale", key="stale",
                               help=f"Move {explore.STALE_FRACTION:.0%} of the quotes (at least one) by ±50–110 bp, "
                                    "as in the benchmark's stale-quote test, and see which ones a stale score flags.")
        c["show_3d"] = st.toggle("3-D surface view", key="show_3d")
    # Full width: five methods' chips were cut off in a third of the page at 1280 px.
    c["methods"] = st.multiselect("Methods", METHODS, DEFAULT_METHODS, key="methods", format_func=method_label)
    return c


def true_surface(c: dict):
    """The true vols (13, 17): sampled (SSVI parameters on sliders) or drawn; None after an error."""
    family, seed = c["family"], c["seed"]
    ssvi_params = None
    if c["source"] == "Sample" and family in explore.SSVI_FAMILIES:
        drawn = explore.ssvi_parameters(family, seed)
        with st.expander("SSVI parameters (start at this seed's draw)"):
            columns = st.columns(3)
            ssvi_params = {}
            for i, name in enumerate(explore.SSVI_PARAMS):
                low, high = explore.SSVI_PARAM_BOUNDS[name]
                ssvi_params[name] = columns[i % 3].slider(name, low, high, drawn[name], (high - low) / 200,
                                                          format="%.4f", key=f"ssvi_{family}_{seed}_{name}")
    sampled = state.sample_surface(family, seed, ssvi_params)
    if c["source"] != "Draw":
        return sampled
    if st.session_state.get("surface_editor_for") != (family, seed):   # a new base: forget old edits
        st.session_state["surface_editor_for"] = (family, seed)
        forget_editor("surface_editor")
    with st.expander("True implied-vol surface (edit any cell; starts from the sampled surface)", expanded=True):
        edited = grid_editor(sampled, "surface_editor", lambda k, label: st.column_config.NumberColumn(
            label, format="%.3f", width=EDITOR_COLUMN_PX, help=f"k = {k}"))
    try:
        return explore.check_truth(edited.to_numpy())
    except ValueError as exc:
        st.error(f"The drawn surface cannot be used: {exc}.")
        return None


def grid_editor(values, key: str, column) -> pd.DataFrame:
    """``values`` (13, 17) in two editors, k <= 0 above k > 0 (EDITOR_HALVES), keyed ``key``_left and
    ``key``_right; ``column(k, label)`` configures one k column. Returns the edited (13, 17) frame."""
    parts = []
    for side, title, cols in EDITOR_HALVES:
        st.caption(title)
        parts.append(st.data_editor(
            pd.DataFrame(np.asarray(values)[:, cols], index=pd.Index(T_LABELS, name="T \\ k"),
                         columns=K_LABELS[cols]),
            key=f"{key}_{side}", width="content", height=EDITOR_HEIGHT,
            column_config={"_index": st.column_config.Column(width=EDITOR_INDEX_PX)}
            | {k: column(k, editor_k_label(float(kv))) for k, kv in zip(K_LABELS[cols], K_GRID[cols])}))
    return pd.concat(parts, axis=1)


def forget_editor(key: str) -> None:
    """Drop both halves' edits (a new base surface or mask)."""
    for side, _, _ in EDITOR_HALVES:
        st.session_state.pop(f"{key}_{side}", None)


def observed_mask(c: dict):
    """The observed mask (13, 17): the regime's, or drawn with presets; None after an error."""
    regime_mask = state.sample_mask(c["regime"], c["mask_seed"])
    observed = regime_mask
    if c["draw_mask"]:
        if st.session_state.get("mask_editor_for") != (c["regime"], c["mask_seed"]):
            st.session_state["mask_editor_for"] = (c["regime"], c["mask_seed"])
            st.session_state["mask_base"] = regime_mask
            forget_editor("mask_editor")
        with st.expander("Observed mask (tick = quoted; starts from the regime's mask)", expanded=True):
            buttons = st.columns(len(explore.MASK_PRESETS))
            clicked = [name for i, (name, column) in enumerate(zip(explore.MASK_PRESETS, buttons))
                       if column.button(PRESET_LABELS.get(name, name), key=f"preset_{i}", width="stretch",
                                        help=f"{name}: {explore.PRESET_HELP[name]}")]
            edited = grid_editor(st.session_state["mask_base"], "mask_editor",
                                 lambda k, label: st.column_config.CheckboxColumn(label, width=EDITOR_COLUMN_PX,
                                                                                  help=f"k = {k}"))
        observed = edited.to_numpy(dtype=bool)
        if clicked:   # the preset applies to the mask as drawn so far; the editor restarts from it
            st.session_state["mask_base"] = explore.apply_preset(observed, clicked[0])
            forget_editor("mask_editor")
            st.rerun()
    try:
        return explore.check_mask(observed)
    except ValueError as exc:
        st.error(f"Cannot repair: {exc}.")
        return None


def scores(view, noise_bp: float) -> None:
    """Who won on this surface, and every method's scores."""
    st.subheader("Scores for this surface")
    verdict = view.verdict()
    metric = "missing-point RMSE" if verdict["score_name"] == "rmse_missing" else "all-cell RMSE (nothing is missing)"
    unit = numbers.VOL_UNIT
    if "runner_up" in verdict and verdict["reduction"] < 0.01:
        st.info(f"A tie on {metric}: {method_label(verdict['winner'])} {numbers.vol(verdict['score'])} {unit} against "
                f"{method_label(verdict['runner_up'])}'s {numbers.vol(verdict['runner_up_score'])} (less than 1 % "
                "apart).")
    elif "runner_up" in verdict:
        st.success(f"**{method_label(verdict['winner'])}** wins on {metric}: {numbers.vol(verdict['score'])} {unit} "
                   f"against {method_label(verdict['runner_up'])} (the strongest rival shown) at "
                   f"{numbers.vol(verdict['runner_up_score'])} — {numbers.vol(verdict['gap'])} {unit} "
                   f"({verdict['reduction']:.0%}) lower, a ratio of {verdict['ratio']:.2f}×.")
    else:
        st.info(f"{method_label(verdict['winner'])}: {metric} {numbers.vol(verdict['score'])} {unit}.")
    level = f"{100 * view.band_level:g} %"
    table = pd.DataFrame([{
        "method": method_label(m), "projection": v.projection, SCORE_RMSE_MISSING: v.rmse_missing,
        SCORE_RMSE_ALL: v.rmse_all, "g(k)<0 raw": v.g_negative_raw, "g(k)<0 projected": v.g_negative,
        "calendar raw": v.raw_calendar, "calendar projected": v.post_calendar,
        f"{level} band": v.band.removesuffix(" band").replace("(Gaussian ", "(") if v.band else numbers.MISSING,
        "band covers (missing)": v.band_coverage}
        for m, v in view.methods.items()])
    # Narrow number columns: at 1280 px the band columns at the right end must stay in view.
    # placeholder: a method without a band has no coverage; its cell reads "—", not "None".
    st.dataframe(numbers.scaled(table, SCORE_KINDS), hide_index=True, key="scores", placeholder=numbers.MISSING,
                 column_config={
                     "method": st.column_config.TextColumn(width=92),
                     "projection": st.column_config.TextColumn("proj.", width=SCORES_COLUMN_PX, help="projection"),
                     f"{level} band": st.column_config.TextColumn(width=100)}
                 | numbers.columns(SCORE_KINDS, widths=dict.fromkeys(SCORE_KINDS, SCORES_COLUMN_PX),
                                   labels=SCORE_LABELS))
    st.caption(f"RMSE miss / all: missing-point and all-cell RMSE, in {unit} (vol points: 100 × implied vol); "
               "g<0 and cal: the g(k) < 0 and calendar rates, raw and after the projection (proj.), and covers: "
               "the band's coverage, in %. "
               f"{view.n_quoted} of {view.observed.size} cells quoted ({view.quoted_fraction:.0%}), "
               f"{noise_bp:g} bp noise. raw = the method's output, projected = after its projection (column 2). "
               f"Calendar rates are shares of (T, T+1) edges where w falls; g(k) < 0 is the share of interior nodes "
               f"failing Gatheral–Roper. Bands: each method's own {level} interval (conformal for Best, Gaussian "
               f"±1.96 sd otherwise); \"band covers\" is the share of missing cells whose truth lies inside it "
               f"on this one surface. The truth itself: g(k) < 0 on {view.truth_g_negative:.1%}, calendar "
               f"{view.truth_calendar:.1%}.")


def stale(view, shown: list) -> None:
    """Per-quote stale scores of the methods that have one, with the flagged quotes."""
    with_scores = [m for m in shown if view.methods[m].stale is not None]
    if not with_scores:
        return
    st.subheader("Stale quotes")
    for m in with_scores:
        s = view.stale_summary(m)
        found = (f" Of the {s['injected']} quote(s) made stale, {s['caught']} flagged; {s['false']} clean quote(s) "
                 f"flagged." if s["injected"] is not None else "")
        st.markdown(f"**{method_label(m)}** flags {s['flagged']} of {s['quotes']} quotes as stale.{found}")
    narrow.plot(figures.stale_grid(view, with_scores, explore.STALE_FLAG_LLR),
                figures.stale_grid(view, with_scores, explore.STALE_FLAG_LLR, narrow=True), "stale_grid")
    st.caption(f"Left: each quote's own error. Right: the stale score of each quote — the log likelihood ratio of "
               f"\"moved by a stale quote\" against \"noise only\" for its leave-one-out residual. □ = flagged "
               f"(score above {explore.STALE_FLAG_LLR:.2f}, the threshold core calibrated for this score at a 2 % "
               f"false-flag rate on synthetic chains; the Your quotes page flags with the same one); ○ = made "
               f"stale on purpose (toggle \"Make some quotes stale\").")


def views(view, shown: list, show_3d: bool) -> None:
    """Side by side heatmaps, the 3-D view, the slices and the g(k) maps (in this order on the page)."""
    st.subheader("Side by side")
    level = f"{100 * view.band_level:g} %"
    st.caption("Top row: truth, quotes and each repair on one vol scale, the median ± 4 robust sd (1.4826 MAD) of "
               "the truth and the quotes, so a steep front row cannot take the whole scale (vols outside it "
               "saturate; hover for values). Below, on a second scale from 0 (the lightest colour, the best) to "
               "the median + 4 robust sd of every error and half-width shown, so one method's bad corner cannot "
               f"wash out the rest: absolute errors and the quote noise, then the half-width of each "
               f"method's {level} band "
               f"(conformal for Best, 1.96 sd for Gaussian sds), so error and half-width compare cell by cell; "
               f"○ = quoted cell, × = missing cell whose truth lies outside the band.")
    narrow.plot(figures.surface_grid(view, shown, METHODS), figures.surface_grid(view, shown, METHODS, narrow=True),
                "surface_grid")
    stale(view, shown)
    if show_3d:
        surface_3d(view, shown)

    slices(view, shown)

    st.subheader("Butterfly arbitrage: g(k) of each repair")
    st.caption("Discrete Gatheral–Roper g on interior k after each method's projection (see the scores table); "
               "× marks g < 0 (a negative risk-neutral density). Colour scale clipped to [-1, 2].")
    narrow.plot(figures.g_grid(view, shown), figures.g_grid(view, shown, narrow=True), "g_grid")
    desk_views(view, shown)


@st.fragment
def desk_views(view, shown: list) -> None:
    """The total-variance fan, ATM vol and skew with bands, g(k) lines and the SVI parameters of one
    repair. Off by default and a fragment: four more figures on every rerun would cost the budget."""
    st.subheader("The desk's views")
    if not st.toggle("Show the total-variance fan, ATM vol and skew, g(k) lines and SVI parameters",
                     key="desk_views"):
        return
    method = st.selectbox("Repair", shown, format_func=method_label, key="desk_method")
    tables = view.desk(method)
    band = view.methods[method].band
    dark = state.dark_mode()
    fan_tab, atm_tab, g_tab, params_tab = st.tabs(["Total variance fan", "ATM vol and skew", "Density g(k)",
                                                   "SVI parameters"])
    with fan_tab:
        st.plotly_chart(quote_figures.variance_fan(tables["fan"], method), key="explorer_fan")
        st.caption("w = iv² T against k, one line per maturity: lines that cross would be calendar arbitrage.")
    with atm_tab:
        st.plotly_chart(quote_figures.atm_terms(tables["atm"], method, band, dark), key="explorer_atm")
        st.caption("ATM vol at k = 0 and ATM skew d iv / d k (central difference over k = ±0.056), with the "
                   "method's band where it has one; the skew band treats the two nodes' bands as independent.")
    with g_tab:
        st.plotly_chart(quote_figures.density_lines(tables["density"], method), key="explorer_density")
        st.caption("Gatheral–Roper g(k) per maturity: proportional to the risk-neutral density in k; below 0 "
                   "is butterfly arbitrage.")
    with params_tab:
        frame, config = numbers.svi_frame(tables["svi"])
        st.dataframe(frame, hide_index=True, key="explorer_params", width="stretch", column_config=config,
                     placeholder=numbers.MISSING)
        st.caption(f"Raw SVI per maturity fitted to the repaired slice (fit error in {numbers.VOL_UNIT}).")


@st.fragment
def surface_3d(view, shown: list) -> None:
    """One repair in 3-D over the truth. A fragment: picking another method redraws only this."""
    method = st.selectbox("Method in 3-D", shown, format_func=method_label, key="method_3d")
    st.plotly_chart(figures.surface_3d(view, method, dark=state.dark_mode()), key="surface_3d")


@st.fragment
def slices(view, shown: list) -> None:
    """Smile and term structure. A fragment: moving a slice slider reruns (and redraws) only this."""
    st.subheader("Slices")
    dark = state.dark_mode()
    left, right = st.columns(2)
    with left:
        # First shown at the maturity with the most quotes, so the smile has quotes to judge against.
        t_index = st.select_slider("Maturity T (years)", range(len(T_GRID)), view.default_smile_index(),
                                   format_func=T_LABELS.__getitem__, key="t_index")
        st.plotly_chart(figures.slice_figure(view.smile(t_index), K_TITLE, f"Smile at T = {T_LABELS[t_index]} y",
                                             shown, METHODS, dark=dark), key="smile")
    with right:
        k_index = st.select_slider("Log-moneyness k", range(len(K_GRID)), view.default_term_index(),
                                   format_func=K_LABELS.__getitem__, key="k_index")
        st.plotly_chart(figures.slice_figure(view.term_structure(k_index), T_TITLE,
                                             f"Term structure at k = {K_LABELS[k_index]}", shown, METHODS,
                                             dark=dark), key="term")
    st.caption("The y axis shows the truth and the quotes, and a repair up to half their span beyond them; a "
               "repair that leaves the axis runs off it (hover for values).")


def main() -> None:
    """The page. Returns early (not st.stop, which would also end the frame's sidebar) on bad input."""
    st.title("Repair explorer")
    st.caption("Grid: maturity T in years (rows) × log-moneyness k = ln(K/F) (columns); vols and errors in "
               "implied-vol units (0.01 = 1 vol point).")
    c = controls()
    iv_true = true_surface(c)
    observed = observed_mask(c) if iv_true is not None else None
    if iv_true is None or observed is None:
        return
    if not c["methods"]:
        st.warning("Pick at least one method to repair with.")
        return
    iv_obs = explore.quotes(iv_true, observed, c["noise_bp"], c["mask_seed"])
    stale_truth = None
    if c["stale"]:
        iv_obs, stale_truth = explore.stale_quotes(iv_obs, c["mask_seed"])
    try:
        view = state.surface_view(iv_true, iv_obs, tuple(c["methods"]), c["arbitrage"], stale_truth,
                                  state.weights_key(), c["noise_bp"])
    except ValueError as exc:
        st.error(f"Cannot repair this surface: {exc}.")
        return
    for method, why in view.errors.items():
        st.warning(f"{method_label(method)} is unavailable here — {why}. The other methods still ran.")
    if not view.methods:
        st.error("No method could repair this surface.")
        return
    scores(view, c["noise_bp"])
    views(view, [m for m in c["methods"] if m in view.methods], c["show_3d"])
    downloads(view)


def downloads(view) -> None:
    st.subheader("Downloads")
    left, right = st.columns(2)
    # Callables: the CSVs are built on click, not on every rerun (the rerun budget).
    left.download_button("surfaces.csv", lambda: view.surfaces_table().to_csv(index=False), file_name="surfaces.csv",
                         mime="text/csv", key="dl_surfaces")
    right.download_button("scores.csv", lambda: view.scores_table().to_csv(index=False), file_name="scores.csv",
                          mime="text/csv", key="dl_scores")
    st.caption("surfaces: per grid node the truth, the quote and each method's iv, sd and band half-width · scores: "
               "the table above, rates as fractions.")


if frame.inside():
    main()
else:   # Streamlit's pages/ discovery ran this file: see ui/frame.py
    frame.hand_over()
