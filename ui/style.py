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
TRUTH_COLOUR = "#111111"
QUOTE_COLOUR = "#555555"

METHOD_LABELS = {"interp": "Interpolation", "svi": "SVI", "cnn": "CNN", "interp_svi": "Interp → SVI",
                 "best": "Best", "vae": "VAE"}

K_TITLE = "log-moneyness k = ln(K/F)"
T_TITLE = "maturity T (years)"
IV_TITLE = "implied vol"
VOL_SCALE = "Viridis"
ERR_SCALE = "YlOrRd"


def method_colour(method: str, methods=()) -> str:
    """The colour of ``method``; ``methods`` (e.g. core.METHODS) fixes the order for unknown names."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    unknown = [m for m in methods if m not in METHOD_COLOURS]
    if method not in unknown:
        unknown.append(method)
    return FALLBACK[unknown.index(method) % len(FALLBACK)]


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def rgba(hex_colour: str, alpha: float) -> str:
    """'#rrggbb' -> 'rgba(r,g,b,alpha)' for translucent bands."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
