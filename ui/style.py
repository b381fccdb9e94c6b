"""One colour per method, the same on every page, and the axis titles with units."""
from __future__ import annotations

# Fixed colours for the methods we know of; any other name gets the next unused colour of
# FALLBACK, in core.METHODS order, so a method keeps its colour across pages and reruns.
METHOD_COLOURS = {
    "interp": "#1f77b4",      # blue
    "svi": "#2ca02c",         # green
    "cnn": "#d62728",         # red
    "interp_svi": "#17becf",  # teal
    "best": "#9467bd",        # purple
    "vae": "#ff7f0e",         # orange
}
FALLBACK = ("#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39")
# The truth line and quote markers by theme: near-black vanishes on Streamlit's dark background
# (#0e1117) and near-white on its light one, so each theme gets its own (theme_colours).
TRUTH_COLOUR = "#111111"
QUOTE_COLOUR = "#555555"
DARK_TRUTH_COLOUR = "#f2f2f2"
DARK_QUOTE_COLOUR = "#c8c8c8"

METHOD_LABELS = {"interp": "Interpolation", "svi": "SVI", "cnn": "CNN", "interp_svi": "Interp → SVI",
                 "best": "Best", "vae": "VAE"}

K_TITLE = "log-moneyness k = ln(K/F)"
T_TITLE = "maturity T (years)"
IV_TITLE = "implied vol"
VOL_SCALE = "Viridis"
# Errors, half-widths and violation rates: 0 (the best value) is the lightest colour. An explicit
# list, not the name "YlOrRd": plotly.js's named YlOrRd runs dark -> light while plotly.py's runs
# light -> dark, so the name drew 0 % as the darkest red on figures that skip plotly.py's
# validation (ui.figures._figure) and the lightest on the others.
ERR_SCALE = [[0.0, "#ffffcc"], [0.125, "#ffeda0"], [0.25, "#fed976"], [0.375, "#feb24c"], [0.5, "#fd8d3c"],
             [0.625, "#fc4e2a"], [0.75, "#e31a1c"], [0.875, "#bd0026"], [1.0, "#800026"]]
# Maturity as a marker colour: mid-luminance at both ends (blue -> orange), so no point is
# near-white on white or near-black on the dark theme (a "Blues" scale hid the short maturities).
T_SCALE = [[0.0, "#2b7bba"], [0.5, "#8e6fbf"], [1.0, "#e8702a"]]


def method_colour(method: str, methods=()) -> str:
    """The colour of ``method``; ``methods`` (e.g. core.METHODS) fixes the order for unknown names."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    unknown = [m for m in methods if m not in METHOD_COLOURS]
    if method not in unknown:
        unknown.append(method)
    return FALLBACK[unknown.index(method) % len(FALLBACK)]


def theme_colours(dark: bool = False) -> tuple:
    """(truth colour, quote colour) that stand out on the light (False) or dark (True) background."""
    return (DARK_TRUTH_COLOUR, DARK_QUOTE_COLOUR) if dark else (TRUTH_COLOUR, QUOTE_COLOUR)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def rgba(hex_colour: str, alpha: float) -> str:
    """'#rrggbb' -> 'rgba(r,g,b,alpha)' for translucent bands."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


# The explorer's grid editors. An editable column's header holds Streamlit's pencil icon (18 px
# drawn 1.3x wide) between 8 px paddings, then the label: a column EDITOR_COLUMN_PX wide shows a
# 5-character label such as "+0.28" whole (the browser layout test measures it); 40 px cut it to "+".
EDITOR_HEADER_PAD_PX = 8 + 24 + 8
EDITOR_COLUMN_PX = 74
EDITOR_INDEX_PX = 72   # its header "T \\ k" has the icon too


# The explorer's scores table: every column this wide or wider, so ten of them fit the main column at
# 1280 px (about 810 px with the sidebar open) with headers short enough to show whole (the browser
# layout test measures them against it).
SCORES_COLUMN_PX = 76


def editor_k_label(k: float) -> str:
    """A grid editor's column header: k to 2 decimals (the column's tooltip gives it to 3)."""
    return f"{k:+.2f}"


# The flagged-quotes table on Your quotes: per quote-table column, a short header and a width in px
# that shows it whole (the browser layout test measures each header against its width less
# TABLE_HEADER_PAD_PX). Long names such as "iv_repaired (vol pts)" were cut at 1280 px; each
# column's tooltip keeps the full name. All eleven together fit the main column at 1280 px.
TABLE_HEADER_PAD_PX = 16   # a read-only column's header: 8 px either side of its text, no icon
FLAGGED_COLUMNS = {"row": ("row", 56), "expiry": ("expiry", 88), "T": ("T", 52), "strike": ("strike", 72),
                   "k": ("k", 56), "type": ("type", 56), "iv": ("iv", 60), "iv_leave_out": ("iv LOO", 68),
                   "iv_repaired": ("repaired", 78), "residual": ("resid.", 62), "stale_score": ("score", 60)}
