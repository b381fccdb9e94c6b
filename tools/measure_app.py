"""Time the explorer in-process: cold first run and reruns after one control changes.

``python -m tools.measure_app`` prints the median AppTest rerun time per control (the script run
of the page, as Streamlit executes it on the server; no browser), and the time to run the page
function pieces directly. Not a test: timings depend on the machine's load.

``--compiled-once``: AppTest compiles the page scripts afresh on every run (a new ScriptCache per
run), where a served app compiles each file once per process; with this flag the runs share one
ScriptCache, as the server's do. The figures without it are the ones docs/app.md compares over time.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent   # not from tests.conftest: it sets OMP_NUM_THREADS=2

EXPLORER = "pages/1_explorer.py"


def timed(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    return elapsed


def compile_once() -> None:
    """Every AppTest run shares one ScriptCache (a script's bytecode compiled once, as on a server)."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared


def main(repeats: int = 7) -> None:
    if "--compiled-once" in sys.argv:
        compile_once()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset (app.py sets 1)')}, "
          f"scripts {'compiled once' if '--compiled-once' in sys.argv else 'compiled every run (AppTest default)'}")
    t0 = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    first = time.perf_counter() - t0
    at.switch_page(EXPLORER)
    explorer_first = timed(at)
    print(f"first run of the app (imports, torch, model): {first:.2f} s; first explorer run: {explorer_first:.3f} s")
    changes = {
        "surface seed (new surface, all repairs)": lambda i: at.number_input(key="surface_seed").set_value(100 + i),
        "mask seed (new mask and noise)": lambda i: at.number_input(key="mask_seed").set_value(200 + i),
        "regime": lambda i: at.selectbox(key="regime").set_value(["regular", "adversarial", "none"][i % 3]),
        "noise (bp)": lambda i: at.slider(key="noise_bp").set_value(10.0 + i),
        "family": lambda i: at.selectbox(key="family").set_value(["shifted_ssvi", "ssvi", "sabr_event"][i % 3]),
        "methods": lambda i: at.multiselect(key="methods").set_value([["interp", "svi"], ["best", "interp", "svi", "cnn"]][i % 2]),
        "projection (method default / calendar / full)": lambda i: at.radio(key="arbitrage").set_value(
            ["calendar", "full", "default"][i % 3]),
        "stale quotes on / off": lambda i: at.toggle(key="stale").set_value(i % 2 == 0),
        "maturity slice": lambda i: at.select_slider(key="t_index").set_value(i % 13),
        "revisit a seen surface (cache hit)": lambda i: at.number_input(key="surface_seed").set_value(100 + i % 2),
    }
    for name, change in changes.items():
        times = []
        for i in range(repeats):
            change(i)
            times.append(timed(at))
        print(f"  {name:46s} median {1e3 * statistics.median(times):6.0f} ms   (min {1e3 * min(times):.0f}, "
              f"max {1e3 * max(times):.0f})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
