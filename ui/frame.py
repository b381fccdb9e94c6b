"""Who runs a page file: the app's frame (app.py's st.navigation), or Streamlit's pages/ discovery.

Streamlit still auto-discovers pages/ when an app calls st.navigation: the first script run of a
server process (before any st.navigation call) routes by the pages/ files' names. Opened by URL on
such a run, a page file would then run on its own, without the frame (page config, sidebar). Each
page file therefore ends with::

    if frame.inside():
        main()
    else:
        frame.hand_over()

Page file names (``1_explorer.py`` -> "explorer") equal the frame's url paths, so that discovery
finds the page (no "Page not found" box) and the file hands the run to app.py, which renders it.
"""
from __future__ import annotations

import contextlib
import runpy
from contextvars import ContextVar
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"
_INSIDE: ContextVar[bool] = ContextVar("inside_frame", default=False)   # per script-run thread


@contextlib.contextmanager
def running():
    """app.py runs the selected page inside this block."""
    token = _INSIDE.set(True)
    try:
        yield
    finally:
        _INSIDE.reset(token)


def inside() -> bool:
    """True while app.py is running the page."""
    return _INSIDE.get()


def hand_over() -> None:
    """Run the app's frame (app.py), which selects and runs this page through st.navigation."""
    runpy.run_path(str(APP), run_name="__main__")
