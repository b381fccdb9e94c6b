"""Cached loaders and the state shared between pages (the model's status, benchmark results).

Only ui.presenters.report (torch-free) is imported at module level; ui.presenters.explore, which loads torch, is
imported inside the functions that need it, so the landing page renders before torch has loaded.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.presenters import report
from ui.text import plain

RESULTS_KEY = "results_source"     # sidebar choice: shipped results or this session's run
RUN_KEY = "benchmark_run"          # this session's latest benchmark result
SHIPPED, LATEST = "shipped results", "latest run"


def mtime(path: Path) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


@st.cache_resource(show_spinner="Loading the model weights…")
def _weights_status(method: str, path: str, modified: float | None) -> dict:
    from ui.presenters import explore

    return explore.weights_status(method, Path(path))


def weights_status(method: str) -> dict:
    """Whether the app's weights of ``method`` ("cnn", "best") load (cached per file and modification time)."""
    path = report.weights_path(method)
    return _weights_status(method, str(path), mtime(path))


@st.cache_data(show_spinner=False)
def _manifest(path: str, modified: float | None) -> dict:
    return report.read_manifest(Path(path))


def manifest(method: str = "cnn") -> dict:
    """The manifest of ``method``'s weights (cached); ValueError with a reason when it cannot be read."""
    path = report.weights_path(method)
    return _manifest(str(path), mtime(path.with_suffix(".json")))


@st.cache_data(show_spinner="Loading benchmark results…")
def _load_results(path: str, modified: float | None) -> dict:
    return report.load_benchmark(Path(path))


def shipped_results() -> dict:
    """The shipped benchmark JSON (cached); ValueError with a reason when it cannot be read."""
    path = report.benchmark_json_path()
    return _load_results(str(path), mtime(path))


@st.cache_resource
def run_store() -> dict:
    """Benchmark runs made in this server process, keyed by (n_test, methods, weights): a rerun of
    the same configuration is instant, for every session."""
    return {}


def results() -> tuple:
    """(result or None, description) of the results the sidebar selects; shows st.error on failure."""
    if st.session_state.get(RESULTS_KEY) == LATEST and RUN_KEY in st.session_state:
        result = st.session_state[RUN_KEY]
        return result, f"your run: {result['config']['n_test']} surfaces per cell, {result['config']['date']}"
    try:
        result = shipped_results()
    except ValueError as exc:
        st.error(f"Benchmark results unavailable: {plain(exc)}")
        return None, "unavailable"
    config = result.get("config", {})
    return result, (f"shipped results: {config.get('n_test', '?')} surfaces per cell, "
                    f"{config.get('date', 'undated')}")


def weights_key() -> tuple:
    """The weights files the repairs use, with their modification times: part of every cache key,
    so replacing a file invalidates the cached repairs."""
    return tuple((m, str(report.weights_path(m)), mtime(report.weights_path(m))) for m in ("cnn", "best"))


@st.cache_data(max_entries=256, show_spinner=False)
def sample_surface(family: str, seed: int, ssvi_params: dict | None = None):
    """ui.presenters.explore.sample_surface, cached: a Heston surface takes ~35 ms to draw, and the
    explorer asks for it again on every rerun (a slice, a toggle)."""
    from ui.presenters import explore

    return explore.sample_surface(family, seed, ssvi_params)


@st.cache_data(max_entries=256, show_spinner=False)
def sample_mask(regime: str, seed: int):
    """ui.presenters.explore.sample_mask, cached (as sample_surface)."""
    from ui.presenters import explore

    return explore.sample_mask(regime, seed)


@st.cache_data(max_entries=256, show_spinner=False)
def surface_view(iv_true, iv_obs, methods: tuple, arbitrage: str | None, stale_truth, weights: tuple,
                 noise_bp: float | None = None):
    """ui.presenters.explore.score_surface, cached on its inputs (a repeated view costs a hash and a copy).
    ``weights``: ``weights_key()``; the CNN's path is passed on, "best" reads its own."""
    from ui.presenters import explore

    cnn = dict((m, p) for m, p, _ in weights)["cnn"]
    return explore.score_surface(iv_true, iv_obs, methods, arbitrage, Path(cnn), stale_truth=stale_truth,
                                 noise_bp=noise_bp)


def sidebar() -> None:
    """The controls and status shown around every page. app.py calls it after the page has run,
    so the page's content reaches the browser first (the CNN check loads torch)."""
    with st.sidebar:
        options = [SHIPPED] + ([LATEST] if RUN_KEY in st.session_state else [])
        st.radio("Benchmark results", options, key=RESULTS_KEY,
                 help="Shipped: results/benchmark.json. Latest run: the last run from the Benchmark page.")
        st.markdown("**Model weights**")
        for method, name in (("cnn", "CNN"), ("best", "Best")):
            status = weights_status(method)
            if status["available"]:
                st.caption(f"✓ {name}: {Path(status['path']).name} loaded")
            else:
                st.warning(f"{name} unavailable — the other methods still work. {plain(status['message'])}")


def dark_mode() -> bool:
    """True when the viewer's browser shows Streamlit's dark theme (figures pick their truth and
    quote colours by it); False where no theme is known (AppTest, older Streamlit)."""
    try:
        return getattr(st.context.theme, "type", None) == "dark"
    except Exception:  # noqa: BLE001 - no browser context: the light colours
        return False
