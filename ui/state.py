"""Cached loaders and the state shared between pages (the model's status, benchmark results).

Only core.report (torch-free) is imported at module level; core.explore, which loads torch, is
imported inside the functions that need it, so the landing page renders before torch has loaded.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import report

RESULTS_KEY = "results_source"     # sidebar choice: shipped results or this session's run
RUN_KEY = "benchmark_run"          # this session's latest benchmark result
SHIPPED, LATEST = "shipped results", "latest run"


def mtime(path: Path) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


@st.cache_resource(show_spinner="Loading the CNN weights…")
def _cnn_status(path: str, modified: float | None) -> dict:
    from core import explore

    return explore.cnn_status(Path(path))


def cnn_status() -> dict:
    """Whether the app's CNN weights load (cached per file and modification time)."""
    path = report.cnn_weights_path()
    return _cnn_status(str(path), mtime(path))


@st.cache_data(show_spinner=False)
def _manifest(path: str, modified: float | None) -> dict:
    return report.read_manifest(Path(path))


def manifest() -> dict:
    """The CNN's manifest (cached); ValueError with a reason when it cannot be read."""
    path = report.cnn_weights_path()
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
        st.error(f"Benchmark results unavailable: {exc}")
        return None, "unavailable"
    config = result.get("config", {})
    return result, (f"shipped results: {config.get('n_test', '?')} surfaces per cell, "
                    f"{config.get('date', 'undated')}")


@st.cache_data(max_entries=256, show_spinner=False)
def surface_view(iv_true, iv_obs, methods: tuple, arbitrage: str, weights: str, weights_mtime):
    """core.explore.score_surface, cached on its inputs (a repeated view costs a hash and a copy)."""
    from core import explore

    return explore.score_surface(iv_true, iv_obs, methods, arbitrage, Path(weights))


def sidebar() -> None:
    """The controls and status shown around every page. app.py calls it after the page has run,
    so the page's content reaches the browser first (the CNN check loads torch)."""
    with st.sidebar:
        options = [SHIPPED] + ([LATEST] if RUN_KEY in st.session_state else [])
        st.radio("Benchmark results", options, key=RESULTS_KEY,
                 help="Shipped: results/benchmark.json. Latest run: the last run from the Benchmark page.")
        st.markdown("**CNN weights**")
        status = cnn_status()
        if status["available"]:
            st.caption(f"✓ {Path(status['path']).name} loaded")
        else:
            st.warning(f"CNN unavailable — the baselines still work. {status['message']}")
