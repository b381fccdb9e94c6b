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


def wait_for_page(driver, min_charts: int, timeout: float = 60.0) -> dict:
    """Wait until the script finished and ``min_charts`` plotly figures rendered; report what is shown."""
    from selenium.webdriver.common.by import By

    start = time.perf_counter()
    while True:
        charts = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')
        exceptions = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        if exceptions or (len(charts) >= min_charts and not running):
            break
        if time.perf_counter() - start > timeout:
            break
        time.sleep(0.05)
    body = driver.find_element(By.TAG_NAME, "body").text
    return {"charts": len(charts), "exceptions": len(exceptions), "seconds": time.perf_counter() - start,
            "traceback": "Traceback (most recent call last)" in body, "errors": [
                e.text for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')],
            "tables": len(driver.find_elements(By.CSS_SELECTOR, '[data-testid="stTable"], [data-testid="stDataFrame"]'))}


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


if __name__ == "__main__":
    import tempfile

    ARTIFACTS.mkdir(exist_ok=True)
    with served_app() as (url, healthy), tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile))
        try:
            for name, path in PAGES.items():
                t0 = time.perf_counter()
                driver.get(f"{url}/{path}")
                report = wait_for_page(driver, MIN_CHARTS[name])
                print(name, f"{time.perf_counter() - t0:.2f}s", report, screenshot(driver, name))
        finally:
            driver.quit()
