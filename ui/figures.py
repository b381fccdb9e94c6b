"""Plotly figures for the pages. They draw what core computed; no numerics.

Multi-panel figures are assembled as plain dicts with explicit axis domains and turned into a
``go.Figure`` once: ``make_subplots`` costs ~60 ms for a 3 x 5 grid, this ~10 ms, which matters
for the explorer's 300 ms rerun budget.
"""
from __future__ import annotations

import base64
import functools
import textwrap

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from core.engine.grid import K_GRID, T_GRID
from ui.scales import focus_range
from ui.style import (
    ERR_SCALE,
    IV_TITLE,
    T_TITLE,
    VOL_SCALE,
    method_colour,
    method_label,
    rgba,
    theme_colours,
)

FONT = {"size": 11}
VALIDATE = False   # tests set True: plotly checks every property name and value


def _figure(spec: dict) -> go.Figure:
    """The figure of a plain-dict spec. With VALIDATE (the tests), a checked ``go.Figure``, which
    catches a misspelt property. Without (the app), a ``_Drawn``: even unvalidated, building a
    ``go.Figure`` and its ``to_dict`` (which st.plotly_chart calls) cost 9-55 ms per explorer figure,
    over 100 ms a rerun, where handing over the spec with its arrays packed costs 0.2-3 ms."""
    return go.Figure(spec, _validate=True) if VALIDATE else _Drawn(spec)


class _Drawn(go.Figure):
    """A figure that is only drawn. st.plotly_chart reads nothing but ``to_dict()`` from a figure
    object (a plain dict it would validate, slowly), so this skips plotly's property tree and gives
    back the spec with its numeric arrays packed as plotly's typed arrays (base64, as ``to_dict``
    does). Not for changing after it is built: there is no tree to update."""

    def __init__(self, spec: dict):   # no go.Figure.__init__: building the tree is the cost
        packed = _packed(spec)
        # The template after packing: it holds no arrays, and walking its nested dicts cost ~2 ms a figure.
        packed["layout"] = {"template": _template(pio.templates.default)} | packed.get("layout", {})
        object.__setattr__(self, "_spec", packed)

    def to_dict(self) -> dict:
        return self._spec

    to_plotly_json = to_dict

    def __repr__(self) -> str:
        return f"_Drawn({len(self._spec.get('data', []))} traces)"


@functools.lru_cache(maxsize=4)
def _template(name) -> dict:
    """The default template as go.Figure would add it (Streamlit's, once st.plotly_chart is loaded)."""
    return pio.templates[name].to_plotly_json() if name else {}


# plotly.js typed arrays take these dtypes; other numeric arrays are sent as float64.
_TYPED = {"f8", "f4", "i4", "u4", "i2", "u2", "i1", "u1"}


_NESTED = (dict, list, tuple, np.ndarray, np.generic)


def _packed(obj):
    """``obj`` with every numeric numpy array as a plotly typed-array dict ({dtype, bdata, shape});
    other arrays as lists (json cannot write them)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "fiu":
            return obj.tolist()
        dtype = obj.dtype.str[1:]
        a = np.ascontiguousarray(obj if dtype in _TYPED else obj.astype(np.float64))
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)   # typed arrays are little-endian
        out = {"dtype": a.dtype.str[1:], "bdata": base64.b64encode(a).decode()}
        if a.ndim > 1:
            out["shape"] = ", ".join(map(str, a.shape))
        return out
    if isinstance(obj, dict):
        return {k: _packed(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):   # a list of plain values goes as it is (json writes a tuple as a list)
        return [_packed(v) for v in obj] if any(isinstance(v, _NESTED) for v in obj) else obj
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
G_RANGE = (-1.0, 2.0)
# Diverging scale for g(k) on [-1, 2] with white at 0: red where g < 0 (butterfly arbitrage).
G_SCALE = [[0.0, "#b2182b"], [0.2, "#ef8a62"], [1 / 3, "#f7f7f7"], [0.6, "#92c5de"], [1.0, "#2166ac"]]


class Grid:
    """Axis bookkeeping for a rows x cols panel grid built by hand (row 0 at the top)."""

    def __init__(self, rows: int, cols: int, hgap: float = 0.035, vgap: float = 0.09,
                 right: float = 0.93, top: float = 0.95, x=None, y=None, stack: bool = False):
        # stack: one panel a row, in the order panel() is called (rows = the number of panels), each
        # with its own T ticks; only the last panel titles its k axis. For a phone (issue 12).
        self.stack = stack
        if stack:
            cols, hgap = 1, 0.0
        self.rows, self.cols = rows, cols
        # Axis ranges pinned to the heatmap cells of grid coordinates x, y: marker traces on a panel
        # would otherwise pad its autorange and change its ticks from its neighbours'.
        self.x_range, self.y_range = _extent(x), _extent(y)
        self.width = (right - hgap * (cols - 1)) / cols
        self.height = (top - vgap * (rows - 1)) / rows
        self.hgap, self.vgap, self.top = hgap, vgap, top
        self.layout: dict = {"annotations": []}
        self._n = 0
        self._y_title = None

    def panel(self, row: int, col: int, title: str, x_title: str | None = None,
              y_title: str | None = None, y_ticks: bool = True) -> tuple:
        """Allocate the panel at (row, col); returns the (xaxis, yaxis) names for its traces."""
        self._n += 1
        suffix = "" if self._n == 1 else str(self._n)
        if self.stack:
            row, col, y_ticks = self._n - 1, 0, True
            y_title = self._y_title = y_title or self._y_title or T_TITLE
            x_title = "k" if self._n == self.rows else None
        x0 = col * (self.width + self.hgap)
        y1 = self.top - row * (self.height + self.vgap)
        x0, x1 = max(0.0, round(x0, 6)), min(1.0, round(x0 + self.width, 6))
        y0, y1 = max(0.0, round(y1 - self.height, 6)), min(1.0, round(y1, 6))
        self.layout[f"xaxis{suffix}"] = {"domain": [x0, x1], "anchor": f"y{suffix}",
                                         "title": {"text": x_title or "", "standoff": 2},
                                         "tickfont": {"size": 9}} | self._pin(self.x_range)
        self.layout[f"yaxis{suffix}"] = {"domain": [y0, y1], "anchor": f"x{suffix}",
                                         "title": {"text": y_title or "", "standoff": 2},
                                         "tickfont": {"size": 9}, "showticklabels": y_ticks} | self._pin(self.y_range)
        self.layout["annotations"].append({"text": f"<b>{title}</b>", "x": (x0 + x1) / 2, "y": y1,
                                           "xref": "paper", "yref": "paper", "xanchor": "center",
                                           "yanchor": "bottom", "showarrow": False, "font": {"size": 11}})
        return f"x{suffix}", f"y{suffix}"

    @staticmethod
    def _pin(extent) -> dict:
        return {} if extent is None else {"range": extent, "autorange": False}

    def colorbar(self, row0: int, row1: int) -> dict:
        """A colourbar spanning rows row0..row1 (inclusive), at the right edge."""
        y_top = self.top - row0 * (self.height + self.vgap)
        y_bottom = self.top - row1 * (self.height + self.vgap) - self.height
        return {"y": (y_top + y_bottom) / 2, "len": y_top - y_bottom, "yanchor": "middle",
                "x": 0.945, "thickness": 12}


# Phones (issue 12): the pages draw each panel grid twice, side by side and stacked one panel a row,
# and CSS shows one by the window's width (ui.narrow). Stacked, a panel spans the column, ~300 px
# of a 400 px screen, where three to six side by side were 58-94 px slivers.
STACK_PANEL_PX = 180   # a stacked panel's plot height
STACK_GAP_PX = 62      # between stacked panels: the next one's (two-line) title and this one's k ticks
STACK_BAR_PX = 56      # each colour bar over a stacked grid: bar, ticks and title
STACK_TITLE_PX = 34    # the first stacked panel's title, under the colour bars
STACK_MARGIN = {"l": 50, "r": 10, "t": 44, "b": 40}   # t: the top bar's title clear of the mode bar


def _stack_paper(n: int, bars: int) -> tuple:
    """(paper height px, top of the panels, [y of each colour bar's foot, top bar first]) of n panels
    stacked one a row under ``bars`` horizontal colour bars. The bars sit inside the paper: above it,
    plotly's automargin grew the top margin by twice their height and squeezed the panels."""
    plot = n * STACK_PANEL_PX + (n - 1) * STACK_GAP_PX
    paper = plot + STACK_TITLE_PX + bars * STACK_BAR_PX
    feet = [(plot + STACK_TITLE_PX + (bars - 1 - i) * STACK_BAR_PX) / paper for i in range(bars)]
    return paper, plot / paper, feet


def _stack(n: int, bars: int, **kwargs) -> tuple:
    """(Grid of n panels one a row, layout size and margins, the bars' feet) for a stacked figure
    under ``bars`` horizontal colour bars (_top_bars)."""
    paper, top, feet = _stack_paper(n, bars)
    grid = Grid(n, 1, vgap=STACK_GAP_PX / paper, top=top, right=1.0, stack=True, **kwargs)
    return grid, {"height": paper + STACK_MARGIN["t"] + STACK_MARGIN["b"], "margin": STACK_MARGIN}, feet


def _top_bars(layout: dict, titles: dict, feet: list) -> dict:
    """Horizontal colour bars spanning a stacked figure's width, one above the other over its first
    panel: ``titles`` = {coloraxis name: bar title}, top bar first; ``feet`` from _stack."""
    for (axis, title), foot in zip(titles.items(), feet):
        layout[axis]["colorbar"] = _h_colorbar(0.0, 1.0, title) | {"y": foot, "ypad": 0}
    return layout


def _extent(grid) -> list | None:
    """[first - half step, last + half step] of an evenly spaced grid: the edges of its heatmap cells."""
    if grid is None:
        return None
    grid = np.asarray(grid, float)
    return [float(grid[0] - (grid[1] - grid[0]) / 2), float(grid[-1] + (grid[-1] - grid[-2]) / 2)]


def _heatmap(z, x, y, axes, name: str, coloraxis: str, what: str, units: str = "") -> dict:
    return {"type": "heatmap", "z": z, "x": x, "y": y, "xaxis": axes[0], "yaxis": axes[1],
            "coloraxis": coloraxis, "name": name,
            "hovertemplate": f"k=%{{x:.3f}}<br>T=%{{y:.2f}} y<br>{what}=%{{z:.4f}}{units}<extra>{name}</extra>"}


def _markers(x, y, axes, name: str, symbol: str = "circle-open", colour: str = "#777777",
             size: int = 5) -> dict:
    return {"type": "scatter", "mode": "markers", "x": x, "y": y, "xaxis": axes[0], "yaxis": axes[1],
            "name": name, "showlegend": False, "hoverinfo": "skip",
            "marker": {"symbol": symbol, "color": colour, "size": size, "line": {"width": 1, "color": colour}}}


def _h_colorbar(x0: float, x1: float, title: str) -> dict:
    """A horizontal colour bar above the panels between paper x0 and x1: bars laid side by side
    across the top cannot sit on each other at any screen width. The end pad is explicit:
    Streamlit's theme pads a bar by 24 px at each end, which left the iv bar over one column of a
    400 px screen 41 px long, its tick labels turned on end."""
    return {"orientation": "h", "x": (x0 + x1) / 2, "xanchor": "center", "len": x1 - x0, "y": 1.0,
            "yanchor": "bottom", "ypad": 28, "xpad": 4, "thickness": 10, "tickangle": 0,
            "title": {"text": title, "side": "top"}}


def _short_band(band: str) -> str:
    """'conformal 95 % band' -> 'conformal 95 %'; '±1.96 sd (Gaussian 95 %) band' -> '±1.96 sd (95 %)'."""
    return band.removesuffix(" band").replace("(Gaussian ", "(")


def surface_grid(view, methods=None, all_methods=(), narrow: bool = False) -> go.Figure:
    """One row per surface, three columns: truth, quotes and the quote noise on the first row; then
    each repair, its |error| and its band's half-width (the method's own interval, conformal for a
    calibrated method). Three columns whatever the number of methods, so panels keep their width
    (and their titles their room) on a narrow screen. Column 1 shares the vol scale (robust: see
    SurfaceView.vol_range); columns 2 and 3 share the error scale from 0 (SurfaceView.error_range),
    so error and half-width compare directly; x marks a missing cell whose truth is outside the band.
    narrow: the same panels stacked one a row, in reading order (ui.narrow shows it on a phone)."""
    methods = [m for m in (methods or view.methods) if m in view.methods]
    rows = 1 + len(methods)
    if narrow:
        n = 3 + sum(2 + (view.methods[m].half_width is not None) for m in methods)
        grid, size, feet = _stack(n, 2, x=K_GRID, y=T_GRID)
    else:
        grid = Grid(rows, 3, hgap=0.05, vgap=0.35 / rows, right=1.0, top=1.0 - 0.02, x=K_GRID, y=T_GRID)
    data = []
    qk, qt = view.quote_points()
    last = rows - 1
    axes = grid.panel(0, 0, "Truth", y_title=T_TITLE, x_title="k" if last == 0 else None)
    data.append(_heatmap(view.iv_true, K_GRID, T_GRID, axes, "truth", "coloraxis", "iv"))
    # Titles of at most ~15 characters a line: three panels share 400 px on a phone (issue 12).
    axes = grid.panel(0, 1, f"Quotes<br>{int(view.observed.sum())} of {view.observed.size}", y_ticks=False)
    data.append(_heatmap(view.iv_obs, K_GRID, T_GRID, axes, "quotes", "coloraxis", "iv"))
    axes = grid.panel(0, 2, "Quote noise<br>|quote − truth|", y_ticks=False)
    data.append(_heatmap(view.quote_abs_err, K_GRID, T_GRID, axes, "quote noise", "coloraxis2", "|err|"))
    for i, m in enumerate(methods, start=1):
        v, label = view.methods[m], method_label(m)
        x_title = "k" if i == last else None
        axes = grid.panel(i, 0, label, y_title=T_TITLE, x_title=x_title)
        data.append(_heatmap(v.iv, K_GRID, T_GRID, axes, label, "coloraxis", "iv"))
        axes = grid.panel(i, 1, f"{label}<br>|error|", x_title=x_title, y_ticks=False)
        data.append(_heatmap(v.abs_err, K_GRID, T_GRID, axes, f"{label} error", "coloraxis2", "|err|"))
        data.append(_markers(qk, qt, axes, "quoted"))
        if v.half_width is not None:
            axes = grid.panel(i, 2, f"{label}<br>{_short_band(v.band)}", x_title=x_title, y_ticks=False)
            data.append(_heatmap(v.half_width, K_GRID, T_GRID, axes, f"{label} half-width", "coloraxis2",
                                 "half-width"))
            data.append(_markers(qk, qt, axes, "quoted"))
            ok, ot = view.outside_band_points(m)
            data.append(_markers(ok, ot, axes, "truth outside the band", symbol="x-thin", colour="black", size=7))
    low, high = view.vol_range()
    err_low, err_high = view.error_range(methods)
    col = grid.width + grid.hgap
    layout = grid.layout | {
        "height": 210 * rows + 110, "margin": {"l": 50, "r": 10, "t": 70, "b": 40}, "font": FONT,
        "coloraxis": {"colorscale": VOL_SCALE, "cmin": low, "cmax": high,
                      "colorbar": _h_colorbar(0.0, grid.width, "iv")},
        "coloraxis2": {"colorscale": ERR_SCALE, "cmin": err_low, "cmax": err_high,
                       "colorbar": _h_colorbar(col, 1.0, "|error| and half-width (vol)")},
    }
    if narrow:
        layout |= size
        _top_bars(layout, {"coloraxis": "iv", "coloraxis2": "|error| and half-width (vol)"}, feet)
    return _figure({"data": data, "layout": layout})


DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]   # blue below 0, red above
STALE_RANGE = (-2.0, 8.0)   # stale-score colour range (log likelihood ratio); beyond it saturates


def _stale_scale(threshold: float) -> list:
    """Blues below the flag threshold, reds above it, on STALE_RANGE."""
    at = (threshold - STALE_RANGE[0]) / (STALE_RANGE[1] - STALE_RANGE[0])
    return [[0.0, "#2166ac"], [max(at - 1e-3, 0.0), "#d1e5f0"], [at, "#fddbc7"], [1.0, "#b2182b"]]


def stale_grid(view, methods, threshold: float, narrow: bool = False) -> go.Figure:
    """The quotes' own errors (quote − truth, bp) beside each method's stale score per quote;
    squares: quotes flagged as stale (score > threshold); circles: quotes made stale on purpose."""
    methods = [m for m in methods if m in view.methods and view.methods[m].stale is not None]
    if narrow:
        grid, size, feet = _stack(1 + len(methods), 2, x=K_GRID, y=T_GRID)
    else:
        grid = Grid(1, 1 + len(methods), hgap=0.06, vgap=0.0, top=0.88, right=0.9, x=K_GRID, y=T_GRID)
    data = []
    axes = grid.panel(0, 0, "quote − truth (bp of vol)", x_title="k", y_title=T_TITLE)
    data.append(_heatmap(1e4 * (view.iv_obs - view.iv_true), K_GRID, T_GRID, axes, "quote − truth", "coloraxis",
                         "quote−truth", " bp"))
    ik, it = np.array([]), np.array([])
    if view.stale_truth is not None:
        t, k = np.nonzero(view.stale_truth)
        ik, it = K_GRID[k], T_GRID[t]
        data.append(_markers(ik, it, axes, "made stale", symbol="circle-open", colour="black", size=13))
    for j, m in enumerate(methods):
        label = method_label(m)
        axes = grid.panel(0, 1 + j, f"{label}: stale score", x_title="k", y_ticks=False)
        data.append(_heatmap(view.methods[m].stale, K_GRID, T_GRID, axes, f"{label} stale score", "coloraxis2",
                             "score"))
        fk, ft = view.stale_points(m, "flagged")
        data.append(_markers(fk, ft, axes, "flagged", symbol="square-open", colour="black", size=12))
        if view.stale_truth is not None:
            data.append(_markers(ik, it, axes, "made stale", symbol="circle-open", colour="black", size=13))
    bp = float(np.nanmax(np.abs(1e4 * (view.iv_obs - view.iv_true)))) if view.n_quoted else 1.0
    layout = grid.layout | {
        "height": 360, "margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "font": FONT,
        "coloraxis": {"colorscale": DIVERGING, "cmin": -bp, "cmax": bp,
                      "colorbar": {"title": {"text": "bp"}, "x": grid.width + 0.005, "thickness": 10, "len": 0.85}},
        "coloraxis2": {"colorscale": _stale_scale(threshold), "cmin": STALE_RANGE[0], "cmax": STALE_RANGE[1],
                       "colorbar": {"title": {"text": "score"}, "x": 0.915, "thickness": 12, "len": 0.85}},
    }
    if narrow:
        layout |= size
        _top_bars(layout, {"coloraxis": "bp", "coloraxis2": "score"}, feet)
    return _figure({"data": data, "layout": layout})


MAX_COLS = 3   # panels per row: wider grids turn into slivers on a phone and crowd their titles


def g_grid(view, methods=None, narrow: bool = False) -> go.Figure:
    """g(k) of each repair (interior k) on one diverging scale, up to MAX_COLS panels a row; x marks
    the nodes with g < 0."""
    methods = [m for m in (methods or view.methods) if m in view.methods]
    cols = min(max(len(methods), 1), MAX_COLS)
    rows = -(-max(len(methods), 1) // cols)
    if narrow:
        grid, size, feet = _stack(max(len(methods), 1), 1, x=view.g_k, y=T_GRID)
    else:
        grid = Grid(rows, cols, vgap=0.3 / rows if rows > 1 else 0.0, top=0.9 if rows == 1 else 0.95, right=0.9,
                    x=view.g_k, y=T_GRID)
    data = []
    for j, m in enumerate(methods):
        v, label = view.methods[m], method_label(m)
        r, c = divmod(j, cols)
        axes = grid.panel(r, c, f"{label}<br>g<0 on {v.g_negative:.1%}", x_title="k",
                          y_title=T_TITLE if c == 0 else None, y_ticks=c == 0)
        data.append(_heatmap(v.g, view.g_k, T_GRID, axes, label, "coloraxis", "g"))
        gk, gt = view.g_violation_points(m)
        data.append(_markers(gk, gt, axes, "g<0", symbol="x-thin", colour="black", size=7))
    layout = grid.layout | {
        "height": 300 * rows + 30, "margin": {"l": 60, "r": 20, "t": 40, "b": 40}, "font": FONT,
        "coloraxis": {"colorscale": G_SCALE, "cmin": G_RANGE[0], "cmax": G_RANGE[1],
                      "colorbar": {"title": {"text": "g(k)"}, "x": 0.93, "thickness": 12}},
    }
    if narrow:
        layout |= size
        _top_bars(layout, {"coloraxis": "g(k)"}, feet)
    return _figure({"data": data, "layout": layout})


def slice_figure(cut: dict, x_title: str, title: str, methods=None, all_methods=(), dark: bool = False) -> go.Figure:
    """One smile (or term structure): truth, quotes and each method, with its band (conformal for a
    calibrated method, Gaussian otherwise). The y axis always shows the truth and the quotes, and a
    repair only up to half their span beyond them (ui.scales.focus_range): one method's spike runs
    off the axis instead of flattening the rest. ``dark``: colours for the dark theme."""
    truth_colour, quote_colour = theme_colours(dark)
    data, others = [], []
    for m, line in cut["methods"].items():
        if methods is not None and m not in methods:
            continue
        colour, label = method_colour(m, all_methods), method_label(m)
        others += [line["iv"]] + ([line["lower"], line["upper"]] if "lower" in line else [])
        if "lower" in line:
            data.append({"type": "scatter", "x": cut["x"], "y": line["lower"], "mode": "lines",
                         "line": {"width": 0}, "showlegend": False, "hoverinfo": "skip", "legendgroup": m})
            data.append({"type": "scatter", "x": cut["x"], "y": line["upper"], "mode": "lines",
                         "line": {"width": 0}, "fill": "tonexty", "fillcolor": rgba(colour, 0.2),
                         "name": f"{label} {line.get('band', 'band')}", "hoverinfo": "skip", "legendgroup": m})
        data.append({"type": "scatter", "x": cut["x"], "y": line["iv"], "mode": "lines+markers",
                     "marker": {"size": 4}, "line": {"color": colour, "width": 2}, "name": label,
                     "legendgroup": m, "hovertemplate": "%{x:.3f}: iv=%{y:.4f}<extra>" + label + "</extra>"})
    data.append({"type": "scatter", "x": cut["x"], "y": cut["truth"], "mode": "lines", "name": "truth",
                 "line": {"color": truth_colour, "dash": "dash", "width": 2.5},
                 "hovertemplate": "%{x:.3f}: iv=%{y:.4f}<extra>truth</extra>"})
    data.append({"type": "scatter", "x": cut["quote_x"], "y": cut["quote_iv"], "mode": "markers",
                 "name": "quotes", "marker": {"color": quote_colour, "size": 9, "symbol": "diamond",
                                              "line": {"color": truth_colour, "width": 1}},
                 "hovertemplate": "%{x:.3f}: quote=%{y:.4f}<extra>quote</extra>"})
    layout = {"title": {"text": title}, "height": 440, "font": FONT, "hovermode": "closest",
              "margin": {"l": 60, "r": 10, "t": 50, "b": 40},
              "xaxis": {"title": {"text": x_title}},
              "yaxis": {"title": {"text": IV_TITLE}, "range": focus_range(np.r_[np.ravel(cut["truth"]),
                                                                                np.ravel(cut["quote_iv"])], others)},
              "legend": {"orientation": "h", "y": -0.18, "yanchor": "top", "traceorder": "grouped"}}
    return _figure({"data": data, "layout": layout})


def surface_3d(view, method: str, dark: bool = False) -> go.Figure:
    """A repair as a 3-D surface, the truth as a translucent grey sheet, and the quotes."""
    label = method_label(method)
    _, quote_colour = theme_colours(dark)
    qk, qt = view.quote_points()
    data = [
        {"type": "surface", "x": K_GRID, "y": T_GRID, "z": view.methods[method].iv, "name": label,
         "colorscale": VOL_SCALE, "colorbar": {"title": {"text": "iv"}, "thickness": 12},
         "hovertemplate": "k=%{x:.3f}<br>T=%{y:.2f} y<br>iv=%{z:.4f}<extra>" + label + "</extra>"},
        {"type": "surface", "x": K_GRID, "y": T_GRID, "z": view.iv_true, "name": "truth", "opacity": 0.35,
         "colorscale": [[0, "#888"], [1, "#888"]], "showscale": False,
         "hovertemplate": "k=%{x:.3f}<br>T=%{y:.2f} y<br>iv=%{z:.4f}<extra>truth</extra>"},
        {"type": "scatter3d", "x": qk, "y": qt, "z": view.iv_obs[view.observed], "mode": "markers",
         "name": "quotes", "marker": {"size": 3, "color": quote_colour},
         "hovertemplate": "k=%{x:.3f}<br>T=%{y:.2f} y<br>quote=%{z:.4f}<extra>quote</extra>"},
    ]
    layout = {"height": 560, "font": FONT, "margin": {"l": 0, "r": 0, "t": 30, "b": 0},
              "title": {"text": f"{label} repair (coloured), truth (grey), quotes (dots)"},
              "scene": {"xaxis": {"title": {"text": "k"}}, "yaxis": {"title": {"text": "T (years)"}},
                        "zaxis": {"title": {"text": IV_TITLE}}, "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}}}}
    return _figure({"data": data, "layout": layout})


# --------------------------------------------------------------------------- benchmark figures

LOG_TICKS = [b * 10.0**e for e in range(-5, 1) for b in (1, 2, 5)]   # 1-2-5 ticks on log axes
DECADES = {"tickvals": [10.0**e for e in range(-6, 1)], "tickformat": "~g"}   # decade ticks, no SI suffixes


def score_bars(series: dict, title: str, all_methods=(), log: bool = False) -> go.Figure:
    """Grouped bars (cells x methods) of mean scores with SE error bars (log y axis on request)."""
    data = [{"type": "bar", "name": method_label(m), "x": s["cells"], "y": s["mean"],
             "marker": {"color": method_colour(m, all_methods)},
             "error_y": {"type": "data", "array": s["se"], "visible": True, "thickness": 1.2},
             "hovertemplate": "%{x}<br>%{y:.4f} ± %{error_y.array:.4f}<extra>" + method_label(m) + "</extra>"}
            for m, s in series.items()]
    y_title = "missing-point RMSE (vol units" + (", log scale)" if log else ")")
    layout = {"barmode": "group", "height": 420, "font": FONT, "title": {"text": title},
              "margin": {"l": 60, "r": 10, "t": 50, "b": 40},
              "yaxis": {"title": {"text": y_title}, "type": "log" if log else "linear"}
              | ({"tickvals": LOG_TICKS, "tickformat": "~g"} if log else {}),
              "xaxis": {"title": {"text": "cell"}},
              "legend": {"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"}}
    return _figure({"data": data, "layout": layout})


def reliability(details: dict, all_methods=()) -> go.Figure:
    """Empirical against nominal coverage of each sd head's central intervals, with the diagonal."""
    data = [{"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": "perfect calibration",
             "line": {"color": "#999", "dash": "dot"}, "hoverinfo": "skip"}]
    for m, rel in (details.get("reliability") or {}).items():
        data.append({"type": "scatter", "x": rel["nominal"], "y": rel["empirical"], "mode": "lines+markers",
                     "name": method_label(m), "line": {"color": method_colour(m, all_methods)},
                     "hovertemplate": "nominal %{x:.0%}<br>empirical %{y:.1%}<extra>" + method_label(m) + "</extra>"})
    layout = {"height": 400, "font": FONT, "title": {"text": "Reliability of each method's intervals"},
              "margin": {"l": 60, "r": 10, "t": 50, "b": 45},
              "xaxis": {"title": {"text": "nominal level of the method's interval"}, "range": [0, 1],
                        "tickformat": ".0%"},
              "yaxis": {"title": {"text": "empirical coverage (missing cells)"}, "range": [0, 1], "tickformat": ".0%"},
              "legend": {"x": 0.02, "y": 0.98}}
    return _figure({"data": data, "layout": layout})


def err_sd_scatter(points: dict, all_methods=()) -> go.Figure:
    """|error| against predicted sd on missing cells, log-log (methods' sds differ by orders of
    magnitude), with each method's 80 % and 95 % interval edges |err| = q·sd, q its own multiplier
    (conformal or Gaussian): parallel lines on these axes."""
    data = []
    for m, p in points.items():
        label, colour = method_label(m), method_colour(m, all_methods)
        data.append({"type": "scattergl", "x": p["sd"], "y": p["abs_err"], "mode": "markers",
                     "name": f"{label} ({100 * p['above95']:.0f} % outside its 95 % interval)",
                     "marker": {"color": rgba(colour, 0.35), "size": 4}, "legendgroup": m,
                     "hovertemplate": "sd=%{x:.4f}<br>|err|=%{y:.4f}<extra>" + label + "</extra>"})
        for level, dash in ((0.8, "dash"), (0.95, "dot")):
            q = p["q"][level]
            data.append({"type": "scatter", "x": [p["sd_min"], p["sd_max"]], "y": [q * p["sd_min"], q * p["sd_max"]],
                         "mode": "lines", "name": f"{label} {100 * level:g} % edge (|err| = {q:.2f}·sd)",
                         "hoverinfo": "skip", "legendgroup": m, "line": {"color": colour, "dash": dash, "width": 2}})
    layout = {"height": 460, "font": FONT, "title": {"text": "Error against predicted sd (missing cells)"},
              "margin": {"l": 60, "r": 10, "t": 50, "b": 45},
              "xaxis": {"title": {"text": "predicted sd (vol units, log scale)"}, "type": "log", **DECADES},
              "yaxis": {"title": {"text": "|repair − truth| (vol units, log scale)"}, "type": "log", **DECADES},
              "legend": {"orientation": "h", "y": -0.2, "yanchor": "top", "font": {"size": 10}}}
    return _figure({"data": data, "layout": layout})


def roc(details: dict, aucs: dict, all_methods=()) -> go.Figure:
    """Stale-quote ROC curve of each method's residual score, AUC in the legend."""
    data = [{"type": "scatter", "x": [0, 1], "y": [0, 1], "mode": "lines", "name": "chance",
             "line": {"color": "#999", "dash": "dot"}, "hoverinfo": "skip"}]
    for m, curve in (details.get("stale_roc") or {}).items():
        auc = aucs.get(m)
        name = method_label(m) + (f" (AUC {auc:.3f})" if auc is not None and np.isfinite(auc) else "")
        data.append({"type": "scatter", "x": curve["fpr"], "y": curve["tpr"], "mode": "lines", "name": name,
                     "line": {"color": method_colour(m, all_methods), "width": 2},
                     "hovertemplate": "FPR %{x:.2f}<br>TPR %{y:.2f}<extra>" + method_label(m) + "</extra>"})
    layout = {"height": 400, "font": FONT, "title": {"text": "Stale-quote detection, each method's score"},
              "margin": {"l": 60, "r": 10, "t": 50, "b": 45},
              "xaxis": {"title": {"text": "false positive rate (clean quotes flagged)"}, "range": [0, 1]},
              "yaxis": {"title": {"text": "true positive rate (stale quotes flagged)"}, "range": [0, 1]},
              "legend": {"x": 0.55, "y": 0.05}}
    return _figure({"data": data, "layout": layout})


def rate_maps(rows: dict, x, y, y_title: str, title: str, height_per_row: int = 260,
              narrow: bool = False) -> go.Figure:
    """Heatmaps of violation frequencies: ``rows`` = {row title: {method: 2-D list}}, one shared
    scale from 0 (the lightest colour) to the largest rate; each row title's methods wrap at
    MAX_COLS panels a row."""
    row_names = list(rows)
    methods = list(dict.fromkeys(m for r in rows.values() for m in r))
    cols = min(max(len(methods), 1), MAX_COLS)
    per_kind = -(-max(len(methods), 1) // cols)
    n_rows = per_kind * len(row_names)
    if narrow:
        grid, size, feet = _stack(sum(len(rows[r]) for r in row_names) or 1, 1)
    else:
        grid = Grid(n_rows, cols, vgap=0.3 / n_rows if n_rows > 1 else 0.0, top=0.92 if n_rows == 1 else 0.95,
                    right=0.9)
    data = []
    for i, r in enumerate(row_names):
        for j, m in enumerate(methods):
            if m not in rows[r]:
                continue
            label = method_label(m)
            row, col = i * per_kind + j // cols, j % cols
            axes = grid.panel(row, col, f"{label}<br>{r}", x_title="k" if row == n_rows - 1 else None,
                              y_title=y_title if col == 0 else None, y_ticks=col == 0)
            data.append({"type": "heatmap", "z": rows[r][m], "x": x, "y": y, "xaxis": axes[0], "yaxis": axes[1],
                         "coloraxis": "coloraxis", "name": label,
                         "hovertemplate": "k=%{x:.3f}<br>T=%{y:.2f} y<br>rate=%{z:.1%}<extra>" + label + "</extra>"})
    # From 0 (no violation, the best value: the lightest colour) to the largest rate shown, at least
    # 1 %: an all-zero map (the projected row) then stays uniformly pale instead of taking a colour.
    peak = max([float(np.nanmax(np.asarray(rows[r][m], float))) for r in rows for m in rows[r]] + [0.01])
    layout = grid.layout | {
        "height": height_per_row * n_rows + 70, "font": FONT, "title": {"text": title, "y": 0.995},
        "margin": {"l": 60, "r": 20, "t": 70, "b": 40},
        "coloraxis": {"colorscale": ERR_SCALE, "cmin": 0, "cmax": peak,
                      "colorbar": {"title": {"text": "share"}, "tickformat": ".0%", "x": 0.93, "thickness": 12}},
    }
    if narrow:   # the title over the bar, its words wrapped to the phone's width: more room above
        lines = textwrap.wrap(title, 36)
        layout |= size
        layout["title"] = {"text": "<br>".join(lines), "y": 0.995, "yanchor": "top", "x": 0.02, "xanchor": "left"}
        layout["margin"] = layout["margin"] | {"t": layout["margin"]["t"] + 18 * len(lines)}
        layout["height"] += 18 * len(lines)
        _top_bars(layout, {"coloraxis": "share"}, feet)
    return _figure({"data": data, "layout": layout})


def validation_curve(history: dict) -> go.Figure:
    """The CNN's validation missing-point RMSE by epoch, from its manifest."""
    val = history.get("val_rmse_iv") or []
    data = [{"type": "scatter", "x": list(range(1, len(val) + 1)), "y": val, "mode": "lines",
             "name": "validation", "line": {"color": method_colour("cnn")},
             "hovertemplate": "epoch %{x}<br>RMSE %{y:.4f}<extra></extra>"}]
    layout = {"height": 260, "font": FONT, "margin": {"l": 60, "r": 10, "t": 40, "b": 40},
              "title": {"text": "CNN validation missing-point RMSE"},
              "xaxis": {"title": {"text": "epoch"}}, "yaxis": {"title": {"text": "RMSE (vol units)"}, "type": "log"}}
    return _figure({"data": data, "layout": layout})
