"""The served app in a real browser: every page renders its figures, with no exception box."""
import time

from tests.app.browser_marks import BROWSER_MARKS
from tools.browser import (
    MIN_CHARTS,
    MIN_TABLES,
    PAGES,
    TITLES,
    chromium,
    open_from_sidebar,
    screenshot,
    served_app,
    wait_for_page,
)

pytestmark = BROWSER_MARKS


def test_every_page_renders_in_headless_chromium(tmp_path):
    with served_app() as (url, _):
        driver = chromium(tmp_path / "profile")
        try:
            # The server's very first session opens a page by URL (a bookmark): the page renders, and
            # Streamlit's pages/ discovery shows no "Page not found" box over it (ui/frame.py).
            driver.get(f"{url}/diagnostics")
            report = wait_for_page(driver, MIN_CHARTS["diagnostics"], TITLES["diagnostics"])
            time.sleep(1.0)
            report = wait_for_page(driver, MIN_CHARTS["diagnostics"], TITLES["diagnostics"])
            shot = screenshot(driver, "first-session-by-url")
            assert report["on_page"] and report["charts"] >= MIN_CHARTS["diagnostics"], shot
            assert not report["page_not_found"], f"'Page not found' shown on the first session ({shot})"
            driver.get(url)
            for name, path in PAGES.items():
                if name != "overview":
                    open_from_sidebar(driver, path)      # client-side navigation, as a user would
                report = wait_for_page(driver, MIN_CHARTS[name], TITLES[name], min_tables=MIN_TABLES[name])
                shot = screenshot(driver, name)
                assert report["on_page"], f"{name}: the page did not open ({shot})"
                assert report["exceptions"] == 0 and not report["traceback"], f"{name}: exception ({shot})"
                assert report["charts"] >= MIN_CHARTS[name], f"{name}: {report['charts']} charts ({shot})"
                assert not report["errors"], f"{name}: {report['errors']}"
                assert report["tables"] >= MIN_TABLES[name], f"{name}: {report['tables']} tables ({shot})"
                assert not report["page_not_found"], f"{name}: 'Page not found' ({shot})"
            # A direct URL load of a page works too (a bookmark, a refresh).
            driver.get(f"{url}/explorer")
            report = wait_for_page(driver, MIN_CHARTS["explorer"], TITLES["explorer"])
            assert report["charts"] >= MIN_CHARTS["explorer"] and report["exceptions"] == 0
        finally:
            driver.quit()
