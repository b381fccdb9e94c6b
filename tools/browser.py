"""Serve the app and drive it in Debian's headless Chromium (used by test_browser.py, and by hand:
``python -m tools.browser`` writes screenshots of every page to test-artifacts/)."""
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
PAGES = {"overview": "", "explorer": "explorer", "benchmark": "benchmark", "diagnostics": "diagnostics",
         "quotes": "quotes"}
TITLES = {"overview": "Volatility-surface repair workbench", "explorer": "Repair explorer",
          "benchmark": "Benchmark: the 2 × 2", "diagnostics": "Diagnostics", "quotes": "Your quotes"}
# The charts each page must draw (plotly figures), at least.
MIN_CHARTS = {"overview": 1, "explorer": 5, "benchmark": 1, "diagnostics": 5, "quotes": 4}
# The tables (st.table / st.dataframe) each page must draw, at least.
MIN_TABLES = {"overview": 0, "explorer": 1, "benchmark": 6, "diagnostics": 0, "quotes": 1}
WIDTHS = (1600, 1280, 400)          # desktop, laptop and phone widths the layout test checks
SCHEMES = ("light", "dark")         # the browser's colour scheme; Streamlit's theme follows it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(env: dict | None = None, timeout: float = 60.0, port: int | None = None):
    """Run ``streamlit run app.py`` on a free localhost port; yields (base url, seconds to healthy)."""
    port = port or free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    log = open(ARTIFACTS / "streamlit-server.log", "w") if ARTIFACTS.is_dir() else subprocess.DEVNULL
    start = time.perf_counter()
    # As a user's plain `streamlit run app.py`: no thread setting inherited from the test run, so
    # app.py's own default applies.
    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**base, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
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


SNAPSHOT_JS = """
const q = (css) => Array.from(document.querySelectorAll(css));
return {headings: q('h1').map(h => h.innerText),
        charts: q('.js-plotly-plot').length,
        running: q('[data-testid="stApp"]').some(a => a.getAttribute('data-test-script-state') === 'running')
                 || q('[data-testid="stSpinner"]').length > 0,
        exceptions: q('[data-testid="stException"]').length,
        errors: q('[data-testid="stAlertContentError"]').map(e => e.innerText),
        tables: q('[data-testid="stTable"], [data-testid="stDataFrame"]').length,
        traceback: document.body.innerText.includes('Traceback (most recent call last)'),
        page_not_found: document.body.innerText.includes('Page not found')};
"""


def snapshot(driver) -> dict:
    """What the page shows, read in one script call (no stale element references while it rerenders)."""
    return driver.execute_script(SNAPSHOT_JS)


def wait_for_page(driver, min_charts: int, title: str | None = None, timeout: float = 90.0,
                  min_tables: int = 0) -> dict:
    """Wait until the page titled ``title`` has drawn ``min_charts`` plotly figures and ``min_tables``
    tables and its script has finished (or an exception box shows); report what is on screen."""
    start = time.perf_counter()
    first_chart = None
    while True:
        shot = snapshot(driver)
        on_page = title is None or any(title in h for h in shot["headings"])
        if on_page and shot["charts"] and first_chart is None:
            first_chart = time.perf_counter() - start
        if shot["exceptions"] or (on_page and shot["charts"] >= min_charts and shot["tables"] >= min_tables
                                  and not shot["running"]):
            break
        if time.perf_counter() - start > timeout:
            break
        time.sleep(0.05)
    return {"on_page": on_page, "charts": shot["charts"] if on_page else 0, "exceptions": shot["exceptions"],
            "first_chart_s": first_chart, "seconds": time.perf_counter() - start, "traceback": shot["traceback"],
            "errors": shot["errors"], "tables": shot["tables"], "page_not_found": shot["page_not_found"]}


def open_from_sidebar(driver, path: str) -> None:
    """Client-side navigation: click the sidebar link to ``path`` (no page reload)."""
    from selenium.webdriver.common.by import By

    for link in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a'):
        if link.get_attribute("href").rstrip("/").endswith("/" + path if path else ""):
            link.click()
            return
    raise LookupError(f"no sidebar link to {path!r}")


def screenshot(driver, name: str, width: int = 1600) -> Path:
    """Full-page PNG under test-artifacts/ (the window is stretched to the page's height)."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script(
        "const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        "return Math.max(m.scrollHeight, document.body.scrollHeight);")
    driver.set_window_size(width, min(max(int(height) + 100, 1200), 9000))
    time.sleep(0.5)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 1200)
    return path


def toggle(driver, label: str) -> None:
    """Click the st.toggle labelled ``label`` (a real click, as a user would)."""
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stCheckbox"] label'):
        if el.text.strip() == label:
            el.click()
            return
    raise LookupError(f"no toggle labelled {label!r}")


def set_scheme(driver, scheme: str) -> None:
    """Emulate the OS colour scheme ("light" or "dark"); Streamlit's default theme follows it on load."""
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


LAYOUT_JS = """
// Layout defects on the rendered page: elements wider than their column, overlapping panel titles
// inside each plotly figure, and the contrast of the smiles' truth line and quote markers.
const main = document.querySelector('[data-testid="stMain"]') || document.body;
const out = {overflow: [], overlaps: [], contrast: [], background: null, hidden_columns: []};
const tol = 2;
for (const el of main.querySelectorAll('[data-testid="stElementContainer"]')) {
  const parent = el.parentElement.closest('[data-testid="stColumn"], [data-testid="stVerticalBlock"]');
  if (!parent || el.offsetParent === null) continue;
  const r = el.getBoundingClientRect(), p = parent.getBoundingClientRect();
  if (r.width > 0 && (r.right > p.right + tol || r.left < p.left - tol)) {
    out.overflow.push((el.className || '').toString().split(' ').find(c => c.startsWith('st-key-'))
                      || el.innerText.slice(0, 40));
  }
  // Content wider than its own box that is cut off, not scrollable on purpose (tables scroll).
  const inner = el.firstElementChild;
  if (inner && !inner.matches('[data-testid="stDataFrame"], [data-testid="stTable"]')
      && inner.scrollWidth > inner.clientWidth + tol && getComputedStyle(inner).overflowX === 'hidden') {
    out.overflow.push('cut: ' + ((el.className || '').toString().split(' ').find(c => c.startsWith('st-key-'))
                      || el.innerText.slice(0, 40)));
  }
}
// Tables and editors whose columns do not all fit (a horizontal scroller wider than its view).
for (const grid of main.querySelectorAll('[data-testid="stDataFrame"]')) {
  const scroller = grid.querySelector('.dvn-scroller');
  if (grid.offsetParent !== null && scroller && scroller.scrollWidth > scroller.clientWidth + tol) {
    const box = grid.closest('[data-testid="stElementContainer"]');
    out.hidden_columns.push(((box && box.className) || '').toString().split(' ').find(c => c.startsWith('st-key-'))
                            || 'a table');
  }
}
for (const plot of main.querySelectorAll('.js-plotly-plot')) {
  const boxes = Array.from(plot.querySelectorAll('.infolayer .annotation')).map(a => [a.textContent,
                a.getBoundingClientRect()]).filter(([t, b]) => b.width > 0 && t.trim());
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i][1], b = boxes[j][1];
    if (a.left < b.right - tol && b.left < a.right - tol && a.top < b.bottom - tol && b.top < a.bottom - tol)
      out.overlaps.push(boxes[i][0] + ' / ' + boxes[j][0]);
  }
}
// Colour bars: each one's box (title and tick labels included) and the length of its colour fill.
out.colorbars = [];
for (const plot of main.querySelectorAll('.js-plotly-plot')) {
  const box = plot.closest('[data-testid="stElementContainer"]');
  const key = ((box && box.className) || '').toString().split(' ').find(c => c.startsWith('st-key-')) || 'a figure';
  for (const bar of plot.querySelectorAll('.infolayer .colorbar')) {
    const b = bar.getBoundingClientRect(), fill = bar.querySelector('.cbfill');
    if (b.width === 0 || !fill) continue;   // a figure in a hidden tab
    const f = fill.getBoundingClientRect(), title = bar.querySelector('.cbtitle');
    out.colorbars.push([key, (title && title.textContent) || '', [b.left, b.top, b.right, b.bottom],
                        Math.max(f.width, f.height)]);
  }
}
// Heatmap panels: the plot area (plotly's .nsewdrag rectangle) of every subplot that draws a heatmap,
// in every figure in view (a figure hidden by ui.narrow's CSS, or in a hidden tab, has no box).
out.heatmap_panels = [];
for (const plot of main.querySelectorAll('.js-plotly-plot')) {
  if (!plot._fullData) continue;
  const box = plot.closest('[data-testid="stElementContainer"]');
  const key = ((box && box.className) || '').toString().split(' ').find(c => c.startsWith('st-key-')) || 'a figure';
  const subplots = new Set(plot._fullData.filter(t => t.type === 'heatmap' && t.visible !== false)
                           .map(t => (t.xaxis || 'x') + (t.yaxis || 'y')));
  for (const s of subplots) {
    const drag = plot.querySelector('.nsewdrag[data-subplot="' + s + '"]');
    const r = drag && drag.getBoundingClientRect();
    if (r && r.width > 0) out.heatmap_panels.push([key, s, r.width, r.height]);
  }
}
const app = document.querySelector('[data-testid="stApp"]') || document.body;
out.background = getComputedStyle(app).backgroundColor;
for (const key of ['smile', 'quotes_smile']) {
  const plot = main.querySelector('.st-key-' + key + ' .js-plotly-plot');
  if (!plot || !plot.data) continue;
  for (const t of plot.data) {
    if (t.name === 'truth') out.contrast.push(['truth', t.line.color]);
    if (t.name === 'quotes' || (t.name || '').startsWith('quotes (')) out.contrast.push(['quotes', t.marker.color]);
  }
}
return out;
"""


def _rgb(colour: str) -> tuple:
    if colour.startswith("#"):
        return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    import re

    return tuple(float(v) for v in re.findall(r"[\d.]+", colour)[:3])


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two CSS colours ('#rrggbb' or 'rgb(...)')."""
    def lum(colour):
        c = [v / 255 for v in _rgb(colour)]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


HEADERS_JS = """
// Each column header's text in the tables of element keys starting arguments[0] (every table of the
// main column when null), with its width in px measured in the grid's header font (Glide draws
// headers on a canvas: the DOM has the text only).
const ctx = document.createElement('canvas').getContext('2d');
const out = [];
const main = document.querySelector('[data-testid="stMain"]') || document.body;
const boxes = arguments[0] === null ? main.querySelectorAll('[data-testid="stDataFrame"]')
                                    : document.querySelectorAll('[class*="st-key-' + arguments[0] + '"]');
for (const box of boxes) {
  const grid = box.matches('[data-testid="stDataFrame"]') ? box : box.querySelector('[data-testid="stDataFrame"]');
  if (!grid || grid.offsetParent === null) continue;
  ctx.font = '600 13px ' + getComputedStyle(grid).fontFamily;
  for (const th of grid.querySelectorAll('th[role="columnheader"]'))
    out.push([th.textContent, ctx.measureText(th.textContent).width]);
}
return out;
"""


def header_widths(driver, key_prefix: str | None = None) -> list:
    """(header text, its drawn width in px) of every column of the tables keyed ``key_prefix``*, or of
    every visible table in the main column."""
    return driver.execute_script(HEADERS_JS, key_prefix)


MIN_PANEL_PX = 150     # a heatmap panel's plot area, at least, at every width (at 400 px they were 58-94 px)
MIN_COLORBAR_PX = 60   # shorter, a bar's tick labels run together or turn on end


def colorbar_problems(bars: list, tol: float = 2.0) -> list:
    """Colour bars of one figure that sit on each other (boxes, title and tick labels included,
    overlapping by more than ``tol`` px), or whose colour fill is shorter than MIN_COLORBAR_PX.
    ``bars``: (figure key, title, [left, top, right, bottom], fill length) as LAYOUT_JS reports them."""
    out = [f"{key}: colour bar {title!r} is {length:.0f} px long" for key, title, _, length in bars
           if length < MIN_COLORBAR_PX]
    for i, (key, title, a, _) in enumerate(bars):
        for other_key, other, b, _ in bars[i + 1:]:
            if key == other_key and a[0] < b[2] - tol and b[0] < a[2] - tol and a[1] < b[3] - tol and b[1] < a[3] - tol:
                out.append(f"{key}: colour bars {title!r} and {other!r} overlap")
    return out


def layout_report(driver) -> dict:
    """Overflowing elements, overlapping panel titles, colour bars (LAYOUT_JS's list, and
    colorbar_problems of it), heatmap panels ((figure key, subplot, width, height) of each plot area
    in view), and (name, colour, contrast against the page's background) of the smiles' truth line
    and quote markers."""
    out = driver.execute_script(LAYOUT_JS)
    out["contrast"] = [(name, colour, contrast_ratio(colour, out["background"])) for name, colour in out["contrast"]]
    out["colorbar_problems"] = colorbar_problems(out["colorbars"])
    return out


WATCH_JS = """
// Arm a stopwatch on the page's own clock: it starts at the next real click or key press and stops
// when the plotly figure of element key arguments[0] (st.plotly_chart(..., key=...)) shows different data.
const chart = arguments[0];
const key = () => { const g = document.querySelector('.st-key-' + chart + ' .js-plotly-plot');
  return g && g.data ? String(JSON.stringify(g.data.map(t => t.z || t.y))).slice(0, 4000) : null; };
const before = key();
window.__rerun = {t0: null, ms: null};
const start = () => { if (window.__rerun.t0 === null) window.__rerun.t0 = performance.now(); };
document.addEventListener('mousedown', start, {capture: true, once: true});
document.addEventListener('keydown', start, {capture: true, once: true});
function poll() {
  const r = window.__rerun;
  if (r.t0 !== null && key() !== before) { r.ms = performance.now() - r.t0; return; }
  if (r.t0 !== null && performance.now() - r.t0 > 30000) return;
  requestAnimationFrame(poll);
}
requestAnimationFrame(poll);
"""


def time_rerun(driver, act, chart: str, timeout: float = 40.0) -> float | None:
    """Milliseconds from a real user action ``act(driver)`` to the redraw of the plotly figure with
    element key ``chart``, timed inside the page (no WebDriver round trips in the interval)."""
    driver.execute_script(WATCH_JS, chart)
    act(driver)
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        ms = driver.execute_script("return window.__rerun.ms")
        if ms is not None:
            return ms
        time.sleep(0.1)
    return None


def _click_seed_up(driver):
    from selenium.webdriver.common.by import By

    start = time.perf_counter()
    while not (buttons := driver.find_elements(By.CSS_SELECTOR, '[data-testid="stNumberInputStepUp"]')):
        if time.perf_counter() - start > 30:
            raise TimeoutError("no number input on the page")
        time.sleep(0.1)
    buttons[0].click()


def _maturity_right(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    slider = driver.find_element(By.CSS_SELECTOR, 'input[type=range][aria-label="Maturity T (years)"]')
    slider.send_keys(Keys.ARROW_RIGHT)


def measure(repeats: int = 7) -> None:
    """Cold start (launch -> landing content and first figure), then explorer reruns in the browser."""
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        _measure(repeats)
    finally:
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _measure(repeats: int) -> None:
    import statistics
    import tempfile

    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile))
        driver.get("about:blank")
        port = free_port()
        try:
            for browser_state in ("fresh browser profile", "browser cache warm (server restarted)"):
                launch = time.perf_counter()
                with served_app(port=port) as (url, healthy):
                    driver.get(url)
                    while not driver.find_elements(By.CSS_SELECTOR, "h1"):
                        time.sleep(0.02)
                    heading = time.perf_counter() - launch
                    report = wait_for_page(driver, 1, TITLES["overview"])
                    chart = heading + (report["first_chart_s"] or float("nan"))
                    print(f"cold start, {browser_state}: server healthy {healthy:.2f} s, landing title and 2x2 "
                          f"{heading:.2f} s, first figure {chart:.2f} s, all done {time.perf_counter() - launch:.2f} s")
                driver.get("about:blank")
            with served_app(port=port) as (url, healthy):
                driver.get(url)
                wait_for_page(driver, 1, TITLES["overview"])
                t0 = time.perf_counter()
                open_from_sidebar(driver, "explorer")
                report = wait_for_page(driver, MIN_CHARTS["explorer"], TITLES["explorer"])
                print(f"explorer, first visit: {time.perf_counter() - t0:.2f} s to all {report['charts']} figures")
                for name, act, chart in (
                        ("surface seed +1 (new surface, every figure)", _click_seed_up, "surface_grid"),
                        ("maturity slice (the smile)", _maturity_right, "smile")):
                    times = []
                    for _ in range(repeats):
                        times.append(time_rerun(driver, act, chart))
                        wait_for_page(driver, MIN_CHARTS["explorer"], TITLES["explorer"])
                        time.sleep(0.5)
                    ok = [t for t in times if t is not None]
                    if not ok:
                        print(f"explorer rerun in the browser, {name}: no redraw seen")
                        continue
                    print(f"explorer rerun in the browser, {name}: median {statistics.median(ok):.0f} ms, "
                          f"min {min(ok):.0f}, max {max(ok):.0f} over {len(ok)} (action -> figure redrawn)")
        finally:
            driver.quit()


def layout_pass(driver, url: str):
    """Every page at every width, light and dark: yields (name, width, scheme, page report, screenshot
    path) once the page has rendered and plotly has laid out its annotations."""
    for scheme in SCHEMES:
        set_scheme(driver, scheme)
        for width in WIDTHS:
            driver.set_window_size(width, 1200)
            for name, path in PAGES.items():
                driver.get(f"{url}/{path}")
                report = wait_for_page(driver, MIN_CHARTS[name], TITLES[name], min_tables=MIN_TABLES[name])
                time.sleep(1.0)   # plotly lays out its annotations after the first paint
                yield name, width, scheme, report, screenshot(driver, f"{name}-{width}-{scheme}", width)


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
                report = wait_for_page(driver, MIN_CHARTS[name], TITLES[name], min_tables=MIN_TABLES[name])
                print(name, report, screenshot(driver, name))
            if "--layout" in sys.argv:   # every page at every width, light and dark, with the layout checks
                for name, width, scheme, _, shot in layout_pass(driver, url):
                    print(name, width, scheme, layout_report(driver), shot)
        finally:
            driver.quit()
