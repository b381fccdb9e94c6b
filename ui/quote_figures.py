"""Plotly figures for the "Your quotes" page. They draw what core.quotes.workflow computed; no numerics."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.engine.grid import K_GRID, T_GRID
from ui.style import (
    ERR_SCALE,
    IV_TITLE,
    K_TITLE,
    QUOTE_COLOUR,
    T_TITLE,
    VOL_SCALE,
    method_colour,
    method_label,
    rgba,
)

FONT = {"size": 11}
FLAG_COLOUR = "#d62728"
OTHER_COLOUR = "#bbbbbb"


def _panel_axes(n: int, gap: float = 0.06) -> list:
    width = (0.92 - gap * (n - 1)) / n
    return [(round(i * (width + gap), 6), round(i * (width + gap) + width, 6)) for i in range(n)]


def grid_panels(result, all_methods=()) -> go.Figure:
    """Quotes on the grid, the repaired grid and (if any) its predictive sd, as heatmaps; the two
    vol panels share one scale spanning quotes and repair; ○ marks quoted nodes."""
    label = method_label(result.method)
    panels = [("Quotes on the grid", result.gridded.iv_obs, "coloraxis", "iv"),
              (f"Repaired: {label}", result.result.iv, "coloraxis", "iv")]
    if result.result.sd is not None:
        panels.append((f"{label} predictive sd", result.result.sd, "coloraxis2", "sd"))
    domains = _panel_axes(len(panels))
    data, layout = [], {"annotations": []}
    quoted = np.argwhere(result.gridded.observed)
    for i, ((title, z, axis, what), (x0, x1)) in enumerate(zip(panels, domains)):
        s = "" if i == 0 else str(i + 1)
        layout[f"xaxis{s}"] = {"domain": [x0, x1], "anchor": f"y{s}", "title": {"text": "k"}}
        layout[f"yaxis{s}"] = {"domain": [0.0, 0.88], "anchor": f"x{s}", "title": {"text": T_TITLE if i == 0 else ""},
                               "showticklabels": i == 0}
        layout["annotations"].append({"text": f"<b>{title}</b>", "x": (x0 + x1) / 2, "y": 0.9, "xref": "paper",
                                      "yref": "paper", "showarrow": False, "yanchor": "bottom"})
        data.append({"type": "heatmap", "z": z, "x": K_GRID, "y": T_GRID, "xaxis": f"x{s}", "yaxis": f"y{s}",
                     "coloraxis": axis, "name": title,
                     "hovertemplate": f"k=%{{x:.3f}}<br>T=%{{y:.2f}} y<br>{what}=%{{z:.4f}}<extra></extra>"})
        data.append({"type": "scatter", "mode": "markers", "x": K_GRID[quoted[:, 1]], "y": T_GRID[quoted[:, 0]],
                     "xaxis": f"x{s}", "yaxis": f"y{s}", "showlegend": False, "hoverinfo": "skip",
                     "marker": {"symbol": "circle-open", "color": "white", "size": 5}})
    finite = np.concatenate([result.gridded.iv_obs[result.gridded.observed], result.result.iv.ravel()])
    layout.update({
        "height": 360, "margin": {"l": 60, "r": 20, "t": 30, "b": 40}, "font": FONT,
        "coloraxis": {"colorscale": VOL_SCALE, "cmin": float(finite.min()), "cmax": float(finite.max()),
                      "colorbar": {"x": 0.93, "len": 0.9, "thickness": 12, "title": {"text": "iv"}}},
        "coloraxis2": {"colorscale": ERR_SCALE, "cmin": 0,
                       "colorbar": {"x": 1.0, "len": 0.9, "thickness": 12, "title": {"text": "sd"}}},
    })
    return go.Figure({"data": data, "layout": layout})


def smile(curve, quotes, T: float, method: str, all_methods=(), expiry: str | None = None) -> go.Figure:
    """The repaired smile at one expiry (± 2 sd band when the method has one) over the expiry's
    quotes: used quotes with their bid/ask, flagged quotes in red, set-aside/dropped/outside in grey."""
    colour = method_colour(method, all_methods)
    label = method_label(method)
    fig = go.Figure()
    if np.isfinite(curve["sd"]).any():
        fig.add_trace(go.Scatter(x=np.concatenate([curve["k"], curve["k"][::-1]]),
                                 y=np.concatenate([curve["iv"] + 2 * curve["sd"], (curve["iv"] - 2 * curve["sd"])[::-1]]),
                                 fill="toself", fillcolor=rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip",
                                 name=f"{label} ± 2 sd"))
    fig.add_trace(go.Scatter(x=curve["k"], y=curve["iv"], mode="lines", line={"color": colour, "width": 2},
                             name=f"{label} repair", hovertemplate="k=%{x:.3f}<br>iv=%{y:.4f}<extra></extra>"))
    used = quotes[(quotes["status"] == "used") & ~quotes["stale_flag"]]
    flagged = quotes[quotes["stale_flag"]]
    other = quotes[quotes["status"] != "used"]
    has_spread = "iv_bid" in quotes and np.isfinite(used["iv_bid"]).any()
    error = ({"type": "data", "symmetric": False, "array": used["iv_ask"] - used["iv"],
              "arrayminus": used["iv"] - used["iv_bid"], "thickness": 1, "width": 0, "color": QUOTE_COLOUR}
             if has_spread else None)
    fig.add_trace(go.Scatter(x=used["k"], y=used["iv"], mode="markers", name="quotes (mid, bid/ask)",
                             marker={"color": QUOTE_COLOUR, "size": 5}, error_y=error, customdata=used["row"],
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
    fig.update_layout(title=title, xaxis_title=K_TITLE, yaxis_title=IV_TITLE, height=420, font=FONT,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(range=[float(K_GRID[0]) - 0.05, float(K_GRID[-1]) + 0.05])
    return fig


def term_structure(ts, k: float, method: str, all_methods=()) -> go.Figure:
    """Repaired iv along T at one k node, with the gridded quotes there."""
    colour = method_colour(method, all_methods)
    fig = go.Figure()
    if np.isfinite(ts["sd"]).any():
        fig.add_trace(go.Scatter(x=np.concatenate([ts["T"], ts["T"][::-1]]),
                                 y=np.concatenate([ts["iv"] + 2 * ts["sd"], (ts["iv"] - 2 * ts["sd"])[::-1]]),
                                 fill="toself", fillcolor=rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip",
                                 name="± 2 sd"))
    fig.add_trace(go.Scatter(x=ts["T"], y=ts["iv"], mode="lines+markers", line={"color": colour},
                             name=f"{method_label(method)} repair",
                             hovertemplate="T=%{x:.2f} y<br>iv=%{y:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=ts["T"], y=ts["iv_quoted"], mode="markers", name="quotes on the grid",
                             marker={"color": QUOTE_COLOUR, "size": 8, "symbol": "circle-open"},
                             hovertemplate="T=%{x:.2f} y<br>iv=%{y:.4f}<extra>gridded quote</extra>"))
    fig.update_layout(title=f"Term structure at k = {k:+.3f}", xaxis_title=T_TITLE, yaxis_title=IV_TITLE,
                      height=420, font=FONT, margin={"l": 60, "r": 20, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def residuals(quote_table, method: str) -> go.Figure:
    """Quote minus repair (bp) against k for every used quote, coloured by T; flagged quotes in red."""
    used = quote_table[quote_table["status"] == "used"]
    flagged = used[used["stale_flag"]]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=used["k"], y=used["residual"] * 1e4, mode="markers", name="quotes",
                             marker={"color": used["T"], "colorscale": "Blues", "size": 5,
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
