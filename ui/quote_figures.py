"""Plotly figures for the "Your quotes" page. They draw what core.quotes.workflow computed; no numerics."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.engine.grid import K_GRID, T_GRID
from ui.figures import STACK_GAP_PX, STACK_PANEL_PX, _h_colorbar, _stack_paper
from ui.numbers import VOL_POINTS, VOL_UNIT
from ui.scales import focus_range
from ui.style import (
    ERR_SCALE,
    IV_TITLE,
    K_TITLE,
    T_SCALE,
    T_TITLE,
    VOL_SCALE,
    method_colour,
    method_label,
    rgba,
    theme_colours,
)

FONT = {"size": 11}
FLAG_COLOUR = "#d62728"
OTHER_COLOUR = "#999999"   # mid-grey: visible on the light and the dark background
EXTRAPOLATED = "extrapolated"
# A wash over extrapolated nodes: they keep their colour (hover gives the value) but read as
# "not from quotes" against the solid interpolated region, on either theme.
WASH = [[0.0, "rgba(128,128,128,0.55)"], [1.0, "rgba(128,128,128,0.55)"]]


def _panel_axes(n: int, gap: float = 0.06, right: float = 0.92) -> list:
    width = (right - gap * (n - 1)) / n
    return [(round(i * (width + gap), 6), round(i * (width + gap) + width, 6)) for i in range(n)]


def _stack_rows(n: int) -> list:
    """(y0, y1) paper domains of n panels stacked one a row under two colour bars (figures._stack_paper)."""
    paper, top, _ = _stack_paper(n, 2)
    step = (STACK_PANEL_PX + STACK_GAP_PX) / paper
    return [(round(top - i * step - STACK_PANEL_PX / paper, 6), round(top - i * step, 6)) for i in range(n)]


def _under(x0: float, x1: float, title: str, nticks: int) -> dict:
    """A horizontal colour bar under the panels between paper x0 and x1, its title on top. The pad
    is explicit: Streamlit's theme pads a bar by 24 px at each end, which left the sd bar under a
    third of a 400 px screen 29 px long, its tick labels run together."""
    return {"orientation": "h", "x": (x0 + x1) / 2, "xanchor": "center", "len": x1 - x0, "y": 0.0,
            "yanchor": "bottom", "xpad": 4, "thickness": 10, "nticks": nticks, "tickangle": 0,
            "title": {"text": title, "side": "top"}}


def grid_panels(result, all_methods=(), narrow: bool = False) -> go.Figure:
    """Quotes on the grid, the repaired grid and (if any) its predictive sd, as heatmaps; ○ marks
    quoted nodes; grey-washed nodes with a / mark are extrapolated (outside the quoted region:
    ``result.extrapolated``). The vol scale spans the quotes and the repair inside the quoted
    region (an extrapolated value beyond it saturates), and the sd scale runs from 0 to the
    largest sd inside it, so an extrapolated corner cannot set either scale. Colour bars sit
    horizontally under their panels, so they cannot overlap on a narrow screen. narrow: the panels
    stacked one a row, the bars over them (ui.narrow shows it on a phone: issue 12)."""
    label = method_label(result.method)
    table = result.grid_table
    extrap = table["extrapolated"].to_numpy(bool).reshape(result.result.iv.shape)
    # Two short lines a title: three panels share 400 px on a phone.
    panels = [("Quotes<br>on the grid", result.gridded.iv_obs, "coloraxis", "iv"),
              (f"Repaired<br>{label}", result.result.iv, "coloraxis", "iv")]
    if result.result.sd is not None:
        panels.append((f"{label}<br>predictive sd", result.result.sd, "coloraxis2", "sd"))
    domains = _panel_axes(len(panels), right=1.0)
    stacked = _stack_rows(len(panels)) if narrow else None
    data, layout = [], {"annotations": []}
    quoted = np.argwhere(result.gridded.observed)
    ex = np.argwhere(extrap)
    for i, ((title, z, axis, what), (x0, x1)) in enumerate(zip(panels, domains)):
        s = "" if i == 0 else str(i + 1)
        y0, y1, title_y = (0.34, 0.86, 0.88) if stacked is None else (*stacked[i], stacked[i][1])
        if stacked is not None:
            x0, x1 = 0.0, 1.0
        k_title = "k" if not narrow or i == len(panels) - 1 else ""   # stacked: on the last panel only
        layout[f"xaxis{s}"] = {"domain": [x0, x1], "anchor": f"y{s}", "title": {"text": k_title, "standoff": 2}}
        layout[f"yaxis{s}"] = {"domain": [y0, y1], "anchor": f"x{s}",
                               "title": {"text": T_TITLE if i == 0 or narrow else ""},
                               "showticklabels": i == 0 or narrow}
        layout["annotations"].append({"text": f"<b>{title}</b>", "x": (x0 + x1) / 2, "y": title_y, "xref": "paper",
                                      "yref": "paper", "showarrow": False, "yanchor": "bottom", "font": {"size": 11}})
        data.append({"type": "heatmap", "z": z, "x": K_GRID, "y": T_GRID, "xaxis": f"x{s}", "yaxis": f"y{s}",
                     "coloraxis": axis, "name": title.replace("<br>", " "),
                     "hovertemplate": f"k=%{{x:.3f}}<br>T=%{{y:.2f}} y<br>{what}=%{{z:.4f}}<extra></extra>"})
        if i > 0 and len(ex):   # the repair's panels: mark what no quote supports
            data.append({"type": "heatmap", "z": np.where(extrap, 1.0, np.nan), "x": K_GRID, "y": T_GRID,
                         "xaxis": f"x{s}", "yaxis": f"y{s}", "colorscale": WASH, "showscale": False,
                         "hoverinfo": "skip", "name": f"{EXTRAPOLATED} wash"})
            data.append({"type": "scatter", "mode": "markers", "x": K_GRID[ex[:, 1]], "y": T_GRID[ex[:, 0]],
                         "xaxis": f"x{s}", "yaxis": f"y{s}", "name": EXTRAPOLATED, "showlegend": i == 1,
                         "hovertemplate": "k=%{x:.3f}<br>T=%{y:.2f} y<extra>extrapolated</extra>",
                         "marker": {"symbol": "line-ne", "color": "#222222", "size": 7,
                                    "line": {"width": 1.5, "color": "#222222"}}})
        data.append({"type": "scatter", "mode": "markers", "x": K_GRID[quoted[:, 1]], "y": T_GRID[quoted[:, 0]],
                     "xaxis": f"x{s}", "yaxis": f"y{s}", "showlegend": False, "hoverinfo": "skip",
                     "name": "quoted", "marker": {"symbol": "circle-open", "color": "white", "size": 5}})
    inside = ~extrap
    vols = np.r_[result.gridded.iv_obs[result.gridded.observed], result.result.iv[inside]]
    low, high = float(vols.min()), float(vols.max())
    sd_high = float(np.nanmax(result.result.sd[inside])) if result.result.sd is not None and inside.any() else 1.0
    vol_end = domains[1][1]
    layout.update({
        "height": 420, "margin": {"l": 60, "r": 20, "t": 30, "b": 20}, "font": FONT,
        "legend": {"orientation": "h", "x": 1.0, "xanchor": "right", "y": 1.08, "yanchor": "bottom"},
        "coloraxis": {"colorscale": VOL_SCALE, "cmin": low, "cmax": high,
                      "colorbar": _under(0.0, vol_end, "iv", nticks=4)},
        "coloraxis2": {"colorscale": ERR_SCALE, "cmin": 0, "cmax": sd_high,
                       "colorbar": _under(*domains[-1], "sd", nticks=3)},   # a third of 400 px holds 3 labels
    })
    if narrow:
        paper, _, feet = _stack_paper(len(panels), 2)
        layout.update({"height": paper + 44 + 70, "margin": {"l": 60, "r": 20, "t": 44, "b": 70},
                       "legend": {"orientation": "h", "x": 1.0, "xanchor": "right", "y": -48 / paper,
                                  "yanchor": "top"}})
        layout["coloraxis"]["colorbar"] = _h_colorbar(0.0, 1.0, "iv") | {"y": feet[0], "ypad": 0, "nticks": 4}
        layout["coloraxis2"]["colorbar"] = _h_colorbar(0.0, 1.0, "sd") | {"y": feet[1], "ypad": 0, "nticks": 4}
    return go.Figure({"data": data, "layout": layout})


def _band(fig, x, iv, half, colour, name):
    fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([iv + half, (iv - half)[::-1]]),
                             fill="toself", fillcolor=rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip",
                             name=name))


def _split(y, extrap) -> tuple:
    """(inside, outside) copies of y, NaN elsewhere; the outside part also keeps the inside points
    next to it, so the solid and the dotted line meet without a gap."""
    y, extrap = np.asarray(y, np.float64), np.asarray(extrap, bool)
    touch = extrap.copy()
    touch[1:] |= extrap[:-1]
    touch[:-1] |= extrap[1:]
    return np.where(extrap, np.nan, y), np.where(touch, y, np.nan)


def smile(curve, quotes, T: float, method: str, all_methods=(), expiry: str | None = None, band: str | None = None,
          dark: bool = False) -> go.Figure:
    """The repaired smile at one expiry with its band (``curve["half_width"]``: the method's own
    95 % interval, conformal for Best, named by ``band``) over the expiry's quotes: used quotes with
    their bid/ask, flagged quotes in red, set-aside/dropped/outside in grey. The repair is solid
    inside the quoted k range and dotted where it is extrapolated; the y axis follows the quotes."""
    colour = method_colour(method, all_methods)
    label = method_label(method)
    _, quote_colour = theme_colours(dark)
    fig = go.Figure()
    if np.isfinite(curve["half_width"]).any():
        _band(fig, curve["k"].to_numpy(), curve["iv"].to_numpy(), curve["half_width"].to_numpy(), colour,
              f"{label} {band or 'band'}")
    inside, outside = _split(curve["iv"], curve["extrapolated"])
    fig.add_trace(go.Scatter(x=curve["k"], y=inside, mode="lines", line={"color": colour, "width": 2},
                             name=f"{label} repair", hovertemplate="k=%{x:.3f}<br>iv=%{y:.4f}<extra></extra>"))
    if np.isfinite(outside).any():
        fig.add_trace(go.Scatter(x=curve["k"], y=outside, mode="lines", line={"color": colour, "width": 2,
                                                                              "dash": "dot"},
                                 name=f"{label} {EXTRAPOLATED} (no quotes)",
                                 hovertemplate="k=%{x:.3f}<br>iv=%{y:.4f}<extra>extrapolated</extra>"))
    used = quotes[(quotes["status"] == "used") & ~quotes["stale_flag"]]
    flagged = quotes[quotes["stale_flag"]]
    other = quotes[quotes["status"] != "used"]
    has_spread = "iv_bid" in quotes and np.isfinite(used["iv_bid"]).any()
    error = ({"type": "data", "symmetric": False, "array": used["iv_ask"] - used["iv"],
              "arrayminus": used["iv"] - used["iv_bid"], "thickness": 1, "width": 0, "color": quote_colour}
             if has_spread else None)
    fig.add_trace(go.Scatter(x=used["k"], y=used["iv"], mode="markers", name="quotes (mid, bid/ask)",
                             marker={"color": quote_colour, "size": 6}, error_y=error, customdata=used["row"],
                             hovertemplate="row %{customdata}<br>k=%{x:.3f}<br>iv=%{y:.4f}<extra></extra>"))
    if len(flagged):
        fig.add_trace(go.Scatter(x=flagged["k"], y=flagged["iv"], mode="markers", name="flagged stale",
                                 marker={"color": FLAG_COLOUR, "size": 11, "symbol": "x"},
                                 customdata=np.stack([flagged["row"], flagged["stale_score"]], axis=-1),
                                 hovertemplate="row %{customdata[0]}<br>k=%{x:.3f}<br>iv=%{y:.4f}"
                                               "<br>score %{customdata[1]:.1f}<extra>flagged</extra>"))
    if len(other):
        fig.add_trace(go.Scatter(x=other["k"], y=other["iv"], mode="markers", name="not used",
                                 marker={"color": OTHER_COLOUR, "size": 5, "symbol": "circle-open"},
                                 customdata=np.stack([other["row"], other["reason"]], axis=-1),
                                 hovertemplate="row %{customdata[0]}<br>k=%{x:.3f}<br>iv=%{y:.4f}"
                                               "<br>%{customdata[1]}<extra>not used</extra>"))
    title = f"Smile at T = {T:.3f} y" + (f" ({expiry})" if expiry else "")
    y_range = focus_range(quotes.loc[quotes["status"] == "used", "iv"],
                          [curve["iv"], curve["iv"] + curve["half_width"].fillna(0)])
    fig.update_layout(title=title, xaxis_title=K_TITLE, yaxis_title=IV_TITLE, height=440, font=FONT,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(range=[float(K_GRID[0]) - 0.05, float(K_GRID[-1]) + 0.05])
    fig.update_yaxes(range=y_range)
    return fig


def term_structure(ts, k: float, method: str, all_methods=(), band: str | None = None,
                   dark: bool = False) -> go.Figure:
    """Repaired iv along T at one k node with its band, the gridded quotes there; extrapolated
    nodes (no quote supports them) as open markers on a dotted line."""
    colour = method_colour(method, all_methods)
    _, quote_colour = theme_colours(dark)
    fig = go.Figure()
    if np.isfinite(ts["half_width"]).any():
        _band(fig, ts["T"].to_numpy(), ts["iv"].to_numpy(), ts["half_width"].to_numpy(), colour, band or "band")
    inside, outside = _split(ts["iv"], ts["extrapolated"])
    fig.add_trace(go.Scatter(x=ts["T"], y=inside, mode="lines+markers", line={"color": colour},
                             name=f"{method_label(method)} repair",
                             hovertemplate="T=%{x:.2f} y<br>iv=%{y:.4f}<extra></extra>"))
    if np.isfinite(outside).any():
        fig.add_trace(go.Scatter(x=ts["T"], y=outside, mode="lines+markers", line={"color": colour, "dash": "dot"},
                                 marker={"symbol": "circle-open", "size": 8}, name=f"{EXTRAPOLATED} (no quotes)",
                                 hovertemplate="T=%{x:.2f} y<br>iv=%{y:.4f}<extra>extrapolated</extra>"))
    fig.add_trace(go.Scatter(x=ts["T"], y=ts["iv_quoted"], mode="markers", name="quotes on the grid",
                             marker={"color": quote_colour, "size": 8, "symbol": "diamond"},
                             hovertemplate="T=%{x:.2f} y<br>iv=%{y:.4f}<extra>gridded quote</extra>"))
    inside_iv = ts.loc[~ts["extrapolated"].astype(bool), "iv"]
    fig.update_layout(title=f"Term structure at k = {k:+.3f}", xaxis_title=T_TITLE, yaxis_title=IV_TITLE,
                      height=440, font=FONT, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    fig.update_yaxes(range=focus_range(np.r_[ts["iv_quoted"].to_numpy(), inside_iv.to_numpy()],
                                       [ts["iv"], ts["iv"] + ts["half_width"].fillna(0)]))
    return fig


def residuals(quote_table, method: str) -> go.Figure:
    """Quote minus repair (vol points, as the flagged table) against k for every used quote, coloured by
    T; flagged quotes in red."""
    used = quote_table[quote_table["status"] == "used"]
    flagged = used[used["stale_flag"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=used["k"], y=used["residual"] * VOL_POINTS, mode="markers", name="quotes",
                             marker={"color": used["T"], "colorscale": T_SCALE, "size": 6,
                                     "colorbar": {"title": {"text": "T (y)"}, "thickness": 12}},
                             customdata=np.stack([used["row"], used["T"]], axis=-1),
                             hovertemplate="row %{customdata[0]}<br>T=%{customdata[1]:.3f}<br>k=%{x:.3f}"
                                           f"<br>%{{y:.2f}} {VOL_UNIT}<extra></extra>"))
    if len(flagged):
        fig.add_trace(go.Scatter(x=flagged["k"], y=flagged["residual"] * VOL_POINTS, mode="markers", name="flagged stale",
                                 marker={"color": FLAG_COLOUR, "size": 11, "symbol": "x"},
                                 customdata=flagged["row"],
                                 hovertemplate=f"row %{{customdata}}<br>k=%{{x:.3f}}<br>%{{y:.2f}} {VOL_UNIT}<extra>flagged</extra>"))
    fig.update_layout(title=f"Quote − {method_label(method)} repair", xaxis_title=K_TITLE,
                      yaxis_title=f"residual ({VOL_UNIT})", height=380, font=FONT,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


# --------------------------------------------------------------------------- the desk's views

def _t_colour(T: float) -> str:
    """A maturity's colour on T_SCALE (short blue -> long orange), T in years on T_GRID's span."""
    from plotly.colors import sample_colorscale

    at = (float(T) - float(T_GRID[0])) / float(T_GRID[-1] - T_GRID[0])
    return sample_colorscale(T_SCALE, [min(max(at, 0.0), 1.0)])[0]


def variance_fan(fan, method: str) -> go.Figure:
    """Total variance w(k) (left) and implied vol (right) of the repair, one line per maturity,
    coloured by T; dotted where extrapolated. Calendar arbitrage would show as crossing w lines."""
    fig = go.Figure()
    for side, (column, axis) in enumerate((("w", ("x", "y")), ("iv", ("x2", "y2")))):
        for T, line in fan.groupby("T", sort=True):
            colour = _t_colour(T)
            inside, outside = _split(line[column], line["extrapolated"])
            common = {"x": line["k"], "xaxis": axis[0], "yaxis": axis[1], "legendgroup": f"{T:.2f}",
                      "hovertemplate": f"T={T:.2f} y<br>k=%{{x:.3f}}<br>{column}=%{{y:.4f}}<extra></extra>"}
            fig.add_trace(go.Scatter(y=inside, mode="lines", line={"color": colour, "width": 1.6},
                                     name=f"T = {T:.2f} y", showlegend=side == 0, **common))
            if np.isfinite(outside).any():
                fig.add_trace(go.Scatter(y=outside, mode="lines", line={"color": colour, "width": 1.2, "dash": "dot"},
                                         name=f"T = {T:.2f} y {EXTRAPOLATED}", showlegend=False, **common))
    fig.update_layout(
        title=f"{method_label(method)}: total variance fan and implied vol by maturity (dotted: extrapolated)",
        height=440, font=FONT, margin={"l": 60, "r": 20, "t": 60, "b": 40},
        xaxis={"domain": [0.0, 0.46], "title": {"text": K_TITLE}},
        yaxis={"title": {"text": "total variance w = iv² T"}},
        xaxis2={"domain": [0.56, 1.0], "title": {"text": K_TITLE}, "anchor": "y2"},
        yaxis2={"title": {"text": IV_TITLE}, "anchor": "x2"},
        legend={"orientation": "h", "y": -0.2, "font": {"size": 9}})
    return fig


def atm_terms(atm, method: str, band: str | None = None, dark: bool = False) -> go.Figure:
    """ATM vol (left) and ATM skew d iv / d k (right) against T with their bands; extrapolated
    maturities as open markers."""
    colour = method_colour(method)
    fig = go.Figure()
    for column, half, axis, what in (("atm_iv", "atm_half_width", ("x", "y"), "ATM vol"),
                                     ("atm_skew", "atm_skew_half_width", ("x2", "y2"), "ATM skew")):
        x, y, h = atm["T"].to_numpy(), atm[column].to_numpy(), atm[half].to_numpy()
        if np.isfinite(h).any():
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([y + h, (y - h)[::-1]]),
                                     fill="toself", fillcolor=rgba(colour, 0.15), line={"width": 0},
                                     hoverinfo="skip", xaxis=axis[0], yaxis=axis[1], showlegend=False,
                                     name=f"{what} {band or 'band'}"))
        extrap = atm["extrapolated"].to_numpy(bool)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", xaxis=axis[0], yaxis=axis[1], name=what,
                                 line={"color": colour},
                                 marker={"symbol": np.where(extrap, "circle-open", "circle"), "size": 7},
                                 hovertemplate="T=%{x:.2f} y<br>%{y:.4f}<extra>" + what + "</extra>"))
    fig.update_layout(
        title=f"{method_label(method)}: ATM term structures" + (f" (shaded: {band})" if band else ""),
        height=400, font=FONT, margin={"l": 60, "r": 20, "t": 60, "b": 40}, showlegend=False,
        xaxis={"domain": [0.0, 0.44], "title": {"text": T_TITLE}},
        yaxis={"title": {"text": "ATM implied vol (k = 0)"}},
        xaxis2={"domain": [0.56, 1.0], "title": {"text": T_TITLE}, "anchor": "y2"},
        yaxis2={"title": {"text": "ATM skew d iv / d k"}, "anchor": "x2"})
    return fig


def density_lines(density, method: str) -> go.Figure:
    """g(k) (Gatheral-Roper; proportional to the risk-neutral density in k) per maturity, coloured
    by T, with the zero line: a curve below it is butterfly arbitrage, seen rather than counted."""
    fig = go.Figure()
    for T, line in density.groupby("T", sort=True):
        fig.add_trace(go.Scatter(x=line["k"], y=line["g"], mode="lines+markers", marker={"size": 4},
                                 line={"color": _t_colour(T), "width": 1.5}, name=f"T = {T:.2f} y",
                                 hovertemplate=f"T={T:.2f} y<br>k=%{{x:.3f}}<br>g=%{{y:.3f}}<extra></extra>"))
    negative = density[density["g"] < 0]
    if len(negative):
        fig.add_trace(go.Scatter(x=negative["k"], y=negative["g"], mode="markers", name="g < 0 (arbitrage)",
                                 marker={"color": FLAG_COLOUR, "size": 10, "symbol": "x"}))
    fig.add_hline(y=0.0, line={"color": OTHER_COLOUR, "dash": "dash", "width": 1})
    fig.update_layout(title=f"{method_label(method)}: g(k) per maturity (below 0 = negative density)",
                      xaxis_title=K_TITLE, yaxis_title="g(k)", height=420, font=FONT,
                      margin={"l": 60, "r": 20, "t": 60, "b": 40}, legend={"orientation": "h", "y": -0.2,
                                                                          "font": {"size": 9}})
    return fig


def compare_smiles(curves: dict, quotes, T: float, all_methods=(), expiry: str | None = None,
                   dark: bool = False) -> go.Figure:
    """Several methods' smiles at one expiry over the same quotes with their bid/ask: ``curves`` =
    {method: smile curve (k, iv, extrapolated)}; each method solid where quoted, dotted beyond."""
    _, quote_colour = theme_colours(dark)
    fig = go.Figure()
    for m, curve in curves.items():
        colour = method_colour(m, all_methods)
        inside, outside = _split(curve["iv"], curve["extrapolated"])
        fig.add_trace(go.Scatter(x=curve["k"], y=inside, mode="lines", line={"color": colour, "width": 2},
                                 name=method_label(m), legendgroup=m,
                                 hovertemplate="k=%{x:.3f}<br>iv=%{y:.4f}<extra>" + method_label(m) + "</extra>"))
        if np.isfinite(outside).any():
            fig.add_trace(go.Scatter(x=curve["k"], y=outside, mode="lines", showlegend=False, legendgroup=m,
                                     line={"color": colour, "width": 2, "dash": "dot"}, hoverinfo="skip",
                                     name=f"{method_label(m)} {EXTRAPOLATED}"))
    used = quotes[quotes["status"] == "used"]
    has_spread = "iv_bid" in used and np.isfinite(used["iv_bid"]).any()
    error = ({"type": "data", "symmetric": False, "array": used["iv_ask"] - used["iv"],
              "arrayminus": used["iv"] - used["iv_bid"], "thickness": 1, "width": 3, "color": quote_colour}
             if has_spread else None)
    fig.add_trace(go.Scatter(x=used["k"], y=used["iv"], mode="markers", name="quotes (mid, bid/ask)",
                             marker={"color": quote_colour, "size": 6}, error_y=error,
                             hovertemplate="k=%{x:.3f}<br>iv=%{y:.4f}<extra>quote</extra>"))
    title = f"Methods compared at T = {T:.3f} y" + (f" ({expiry})" if expiry else "") + " (dotted: extrapolated)"
    fig.update_layout(title=title, xaxis_title=K_TITLE, yaxis_title=IV_TITLE, height=440, font=FONT,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(range=[float(K_GRID[0]) - 0.05, float(K_GRID[-1]) + 0.05])
    fig.update_yaxes(range=focus_range(used["iv"], [c["iv"] for c in curves.values()]))
    return fig
