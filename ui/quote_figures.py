"""Plotly figures for the "Your quotes" page. They draw what core.quotes.workflow computed; no numerics."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.engine.grid import K_GRID, T_GRID
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
from ui.scales import focus_range

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


def grid_panels(result, all_methods=()) -> go.Figure:
    """Quotes on the grid, the repaired grid and (if any) its predictive sd, as heatmaps; ○ marks
    quoted nodes; grey-washed nodes with a / mark are extrapolated (outside the quoted region:
    ``result.extrapolated``). The vol scale spans the quotes and the repair inside the quoted
    region (an extrapolated value beyond it saturates), and the sd scale runs from 0 to the
    largest sd inside it, so an extrapolated corner cannot set either scale. Colour bars sit
    horizontally under their panels, so they cannot overlap on a narrow screen."""
    label = method_label(result.method)
    table = result.grid_table
    extrap = table["extrapolated"].to_numpy(bool).reshape(result.result.iv.shape)
    # Two short lines a title: three panels share 400 px on a phone.
    panels = [("Quotes<br>on the grid", result.gridded.iv_obs, "coloraxis", "iv"),
              (f"Repaired<br>{label}", result.result.iv, "coloraxis", "iv")]
    if result.result.sd is not None:
        panels.append((f"{label}<br>predictive sd", result.result.sd, "coloraxis2", "sd"))
    domains = _panel_axes(len(panels), right=1.0)
    data, layout = [], {"annotations": []}
    quoted = np.argwhere(result.gridded.observed)
    ex = np.argwhere(extrap)
    for i, ((title, z, axis, what), (x0, x1)) in enumerate(zip(panels, domains)):
        s = "" if i == 0 else str(i + 1)
        layout[f"xaxis{s}"] = {"domain": [x0, x1], "anchor": f"y{s}", "title": {"text": "k", "standoff": 2}}
        layout[f"yaxis{s}"] = {"domain": [0.3, 0.86], "anchor": f"x{s}", "title": {"text": T_TITLE if i == 0 else ""},
                               "showticklabels": i == 0}
        layout["annotations"].append({"text": f"<b>{title}</b>", "x": (x0 + x1) / 2, "y": 0.88, "xref": "paper",
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
                      "colorbar": {"orientation": "h", "x": vol_end / 2, "xanchor": "center", "len": vol_end,
                                   "y": 0.0, "yanchor": "bottom", "thickness": 10, "title": {"text": "iv",
                                                                                             "side": "top"}}},
        "coloraxis2": {"colorscale": ERR_SCALE, "cmin": 0, "cmax": sd_high,
                       "colorbar": {"orientation": "h", "x": (domains[-1][0] + domains[-1][1]) / 2,
                                    "xanchor": "center", "len": domains[-1][1] - domains[-1][0], "y": 0.0,
                                    "yanchor": "bottom", "thickness": 10, "title": {"text": "sd", "side": "top"}}},
    })
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
    """Quote minus repair (bp) against k for every used quote, coloured by T; flagged quotes in red."""
    used = quote_table[quote_table["status"] == "used"]
    flagged = used[used["stale_flag"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=used["k"], y=used["residual"] * 1e4, mode="markers", name="quotes",
                             marker={"color": used["T"], "colorscale": T_SCALE, "size": 6,
                                     "colorbar": {"title": {"text": "T (y)"}, "thickness": 12}},
                             customdata=np.stack([used["row"], used["T"]], axis=-1),
                             hovertemplate="row %{customdata[0]}<br>T=%{customdata[1]:.3f}<br>k=%{x:.3f}"
                                           "<br>%{y:.1f} bp<extra></extra>"))
    if len(flagged):
        fig.add_trace(go.Scatter(x=flagged["k"], y=flagged["residual"] * 1e4, mode="markers", name="flagged stale",
                                 marker={"color": FLAG_COLOUR, "size": 11, "symbol": "x"},
                                 customdata=flagged["row"],
                                 hovertemplate="row %{customdata}<br>k=%{x:.3f}<br>%{y:.1f} bp<extra>flagged</extra>"))
    fig.update_layout(title=f"Quote − {method_label(method)} repair", xaxis_title=K_TITLE,
                      yaxis_title="residual (bp of vol)", height=380, font=FONT,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig
