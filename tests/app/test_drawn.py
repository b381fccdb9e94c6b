"""The app's figures skip plotly's object tree (ui.figures._Drawn, the rerun budget). What they send
must be what a checked go.Figure sends: the same traces, values and layout, arrays packed."""
import base64
import json

import numpy as np
import plotly.io
import pytest
import streamlit.elements.plotly_chart  # noqa: F401 - registers Streamlit's plotly template, as in the app

import core
from ui import figures
from ui.presenters import explore


def unpacked(obj):
    """Plotly JSON with typed arrays ({dtype, bdata, shape}) turned back into nested float lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"])).astype(float)
            return a.reshape([int(n) for n in obj["shape"].split(",")]).tolist() if "shape" in obj else a.tolist()
        return {k: unpacked(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpacked(v) for v in obj]
    return obj


def differences(new, old, path="") -> list:
    if isinstance(new, dict) and isinstance(old, dict):
        out = [f"{path}/{k}: only in one" for k in set(new) ^ set(old)]
        for k in set(new) & set(old):
            if k == "colorscale" and isinstance(new[k], str):
                continue   # a plotly.js named scale; go.Figure writes out the same colours
            out += differences(new[k], old[k], f"{path}/{k}")
        return out
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [f"{path}: length {len(new)} vs {len(old)}"]
        return [d for i, (a, b) in enumerate(zip(new, old)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(new, float) and isinstance(old, float) and np.isnan(new) and np.isnan(old):
        return []
    if isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(new, bool):
        return [] if np.isclose(new, old, rtol=1e-12, atol=0) else [f"{path}: {new} vs {old}"]
    return [] if new == old else [f"{path}: {new!r:.60} vs {old!r:.60}"]


def sent(fig) -> dict:
    """What st.plotly_chart sends for ``fig`` (its to_dict, written by plotly.io), arrays unpacked."""
    return unpacked(json.loads(plotly.io.to_json(fig.to_dict(), validate=False)))


@pytest.fixture(scope="module")
def view():
    d = explore.DEFAULT_VIEW
    iv = explore.sample_surface(d["family"], d["surface_seed"], None)
    obs = explore.quotes(iv, explore.sample_mask(d["regime"], d["mask_seed"]), d["noise_bp"], d["mask_seed"])
    iv_obs, stale_truth = explore.stale_quotes(obs, d["mask_seed"])
    return explore.score_surface(iv, iv_obs, ("best", "interp", "svi"), None, stale_truth=stale_truth,
                                 noise_bp=d["noise_bp"])


@pytest.mark.parametrize("name", ["surface_grid", "g_grid", "smile", "term", "stale_grid", "surface_3d",
                                  "surface_grid_narrow", "g_grid_narrow", "stale_grid_narrow"])
def test_drawn_figures_send_what_a_checked_figure_sends(view, name, monkeypatch):
    shown, every = list(view.methods), list(core.METHODS)
    build = {"surface_grid": lambda: figures.surface_grid(view, shown, every),
             "g_grid": lambda: figures.g_grid(view, shown),
             "smile": lambda: figures.slice_figure(view.smile(view.default_smile_index()), "k", "s", shown, every),
             "term": lambda: figures.slice_figure(view.term_structure(view.default_term_index()), "T", "t", shown,
                                                  every, dark=True),
             "stale_grid": lambda: figures.stale_grid(view, ["best"], explore.STALE_FLAG_LLR),
             "surface_3d": lambda: figures.surface_3d(view, "best"),
             # the stacked twins a phone shows (ui.narrow, issue 12)
             "surface_grid_narrow": lambda: figures.surface_grid(view, shown, every, narrow=True),
             "g_grid_narrow": lambda: figures.g_grid(view, shown, narrow=True),
             "stale_grid_narrow": lambda: figures.stale_grid(view, ["best"], explore.STALE_FLAG_LLR, narrow=True)}[name]
    monkeypatch.setattr(figures, "VALIDATE", False)
    drawn = build()
    assert isinstance(drawn, figures._Drawn)
    monkeypatch.setattr(figures, "VALIDATE", True)
    checked = build()
    assert not isinstance(checked, figures._Drawn)
    new, old = sent(drawn), sent(checked)
    assert new["data"], "a figure with traces"
    assert not differences(new, old)
    packed = json.dumps(drawn.to_dict())
    assert '"bdata"' in packed, "numeric arrays travel packed"
