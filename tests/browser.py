"""Serve the app and drive it in Debian's headless Chromium (used by test_browser.py, and by hand:
``python -m tests.browser`` writes screenshots of every page to test-artifacts/)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGES = {"overview": "", "explorer": "explorer", "benchmark": "benchmark", "diagnostics": "diagnostics"}
TITLES = {"overview": "Volatility-surface repair workbench", "explorer": "Repair explorer",
          "benchmark": "Benchmark: the 2 × 2", "diagnostics": "Diagnostics"}
# The charts each page must draw (plotly figures), at least.
MIN_CHARTS = {"overview": 1, "explorer": 4, "benchmark": 1, "diagnostics": 5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(env: dict | None = None, timeout: float = 60.0, port: int | None = None):
    """Run ``streamlit run app.py`` on a free localhost port; yields (base url, seconds to healthy)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(ARTIFACTS / f"streamlit-{port}.log", "w") if ARTIFACTS.is_dir() else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > timeout:
                raise TimeoutError("streamlit did not become healthy")
            time.sleep(0.1)
        yield url, time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not subprocess.DEVNULL:
            log.close()


def chromium(user_data_dir: Path, width: int = 1600, height: int = 1200):
    """Headless Debian Chromium through Debian's chromedriver (selenium-manager never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for_page(driver, min_charts: int, title: str | None = None, timeout: float = 90.0) -> dict:
    """Wait until the page titled ``title`` has drawn ``min_charts`` plotly figures and its script
    has finished (or an exception box shows); report what is on screen."""
    from selenium.webdriver.common.by import By

    start = time.perf_counter()
    first_chart = None
    while True:
        heading = driver.find_elements(By.CSS_SELECTOR, "h1")
        on_page = title is None or any(title in h.text for h in heading)
        charts = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot") if on_page else []
        if charts and first_chart is None:
            first_chart = time.perf_counter() - start
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        if exceptions or (on_page and len(charts) >= min_charts and not running):
            break
        if time.perf_counter() - start > timeout:
            break
        time.sleep(0.05)
    body = driver.find_element(By.TAG_NAME, "body").text
    return {"on_page": on_page, "charts": len(charts), "exceptions": len(exceptions),
            "first_chart_s": first_chart, "seconds": time.perf_counter() - start,
            "traceback": "Traceback (most recent call last)" in body, "errors": [
                e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')],
            "tables": len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"], [data-testid="stDataFrame"]'))}


def open_from_sidebar(driver, path: str) -> None:
    """Client-side navigation: click the sidebar link to ``path`` (no page reload)."""
    from selenium.webdriver.common.by import By

    for link in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a'):
        if link.get_attribute("href").rstrip("/").endswith("/" + path if path else ""):
            link.click()
            return
    raise LookupError(f"no sidebar link to {path!r}")


def screenshot(driver, name: str) -> Path:
    """Full-page PNG under test-artifacts/ (the window is stretched to the page's height)."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        "return Math.max(m.scrollHeight, document.body.scrollHeight);")
    driver.set_window_size(1600, min(max(int(height) + 100, 1200), 6000))
    time.sleep(0.5)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1600, 1200)
    return path


def _truth_corner(driver):
    """A value from the explorer's truth heatmap as plotly holds it in the page (changes with the surface)."""
    return driver.execute_script(
        "const g = document.querySelector('.js-plotly-plot');"
        "if (!g || !g.data) return null; const z = g.data[0].z;"
        "return JSON.stringify(z && z[0] ? [z[0][0], z[5][7]] : z);")


def measure(repeats: int = 7) -> None:
    """Cold start (launch -> landing content and first figure), then explorer reruns in the browser."""
    import statistics
    import tempfile

    from selenium.webdriver.common.by import By

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile))
        driver.get("about:blank")
        try:
            launch = time.perf_counter()
            with served_app() as (url, healthy):
                driver.get(url)
                while not driver.find_elements(By.CSS_SELECTOR, "h1"):
                    time.sleep(0.02)
                heading = time.perf_counter() - launch
                report = wait_for_page(driver, 1, TITLES["overview"])
                chart = heading + (report["first_chart_s"] or float("nan"))
                print(f"cold start: server healthy {healthy:.2f} s, landing title and 2x2 {heading:.2f} s, "
                      f"first figure {chart:.2f} s, script finished {time.perf_counter() - launch:.2f} s "
                      "(fresh browser profile: includes loading the JS bundles)")
                t0 = time.perf_counter()
                open_from_sidebar(driver, "explorer")
                report = wait_for_page(driver, MIN_CHARTS["explorer"], TITLES["explorer"])
                print(f"explorer, first visit: {time.perf_counter() - t0:.2f} s to all {report['charts']} figures")
                times = []
                for _ in range(repeats):
                    before = _truth_corner(driver)
                    button = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stNumberInputStepUp"]')[0]
                    t0 = time.perf_counter()
                    button.click()
                    while _truth_corner(driver) == before and time.perf_counter() - t0 < 30:
                        time.sleep(0.005)
                    times.append(time.perf_counter() - t0)
                    wait_for_page(driver, MIN_CHARTS["explorer"], TITLES["explorer"])
                print(f"explorer rerun, surface seed +1 (click -> truth heatmap redrawn): median "
                      f"{1e3 * statistics.median(times):.0f} ms, min {1e3 * min(times):.0f}, max {1e3 * max(times):.0f}")
        finally:
            driver.quit()


if __name__ == "__main__":
    import tempfile

    ARTIFACTS.mkdir(exist_ok=True)
    if "--measure" in sys.argv:
        measure()
        raise SystemExit(0)
    with served_app() as (url, healthy), tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile))
        try:
            driver.get(url)
            for name, path in PAGES.items():
                if name != "overview":
                    open_from_sidebar(driver, path)
                report = wait_for_page(driver, MIN_CHARTS[name], TITLES[name])
                print(name, report, screenshot(driver, name))
        finally:
            driver.quit()
