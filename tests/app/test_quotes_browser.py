"""The "Your quotes" page in headless Chromium at 1280 px: both samples in one click (the prices
sample's flagged-quotes table, its ten columns, headers whole and in view), and a real upload."""
import time

import pytest

from tests.conftest import ROOT
from ui.style import FLAGGED_COLUMNS, TABLE_HEADER_PAD_PX

FLAGGED_WIDTHS = dict(FLAGGED_COLUMNS.values())   # header label -> its column's width (px)
WIDTH = 1280   # a laptop with the sidebar open: the narrowest width where no table should scroll

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not (ROOT / "app.py").exists() or not (ROOT / "tools" / "browser.py").exists(),
                                 reason="needs the dashboard frame (app.py, tools/browser.py)")]


def _click_label(driver, text):
    for label in driver.find_elements("css selector", "label"):
        if label.text.strip() == text:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", label)
            return
    raise AssertionError(f"no control labelled {text!r}")


def test_your_quotes_page_in_headless_chromium(tmp_path):
    from tools.browser import (
        CHROMEDRIVER,
        CHROMIUM,
        chromium,
        header_widths,
        layout_report,
        open_from_sidebar,
        screenshot,
        served_app,
        wait_for_page,
    )

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    bad = tmp_path / "percent.csv"
    # 600: above 5 even read as percent (a plain 20 is now read as 20 %, not refused)
    bad.write_text("T,k,iv\n" + "".join(f"{T},{k},600\n" for T in (0.5, 1.0) for k in (-0.1, 0.0, 0.1)))
    with served_app() as (url, _):
        driver = chromium(tmp_path / "profile", width=WIDTH)
        try:
            driver.get(url)
            wait_for_page(driver, 1, timeout=120)              # the frame and its sidebar are up
            open_from_sidebar(driver, "quotes")
            report = wait_for_page(driver, 4, "Your quotes", timeout=240, min_tables=2)
            shot = screenshot(driver, "quotes_iv", WIDTH)
            assert report["exceptions"] == 0 and not report["traceback"], shot
            assert report["charts"] >= 4 and not report["errors"], (report, shot)
            assert "1,087" in driver.find_element("tag name", "body").text

            _click_label(driver, "Sample: prices with dates")
            time.sleep(1.0)
            report = wait_for_page(driver, 4, "Your quotes", timeout=240, min_tables=2)
            shot = screenshot(driver, "quotes_prices", WIDTH)
            body = driver.find_element("tag name", "body").text
            assert report["exceptions"] == 0 and not report["errors"], (report, shot)
            assert "2,834" in body and "1,002" in body, shot          # rows read, used (metrics)
            # Its flagged table has the most columns (expiry and type too): every header whole in its
            # column, every column in view at 1280 px with the sidebar open.
            headers = dict(header_widths(driver, "quotes_flagged_box"))
            assert {"expiry", "type", "repaired", "score"} <= set(headers), (headers, shot)
            cut = {text: (px, FLAGGED_WIDTHS[text]) for text, px in headers.items()
                   if px > FLAGGED_WIDTHS[text] - TABLE_HEADER_PAD_PX}
            assert not cut, (cut, shot)
            assert not layout_report(driver)["hidden_columns"], shot

            _click_label(driver, "Upload a file")
            deadline = time.time() + 60
            inputs = []
            while time.time() < deadline and not inputs:
                inputs = driver.find_elements("css selector", "input[type=file]")
                time.sleep(0.2)
            assert inputs, screenshot(driver, "quotes_upload_missing", WIDTH)
            inputs[0].send_keys(str(bad))
            deadline = time.time() + 120
            errors = []
            while time.time() < deadline and not errors:
                errors = [e.text for e in driver.find_elements("css selector", '[data-testid="stAlertContentError"]')]
                time.sleep(0.2)
            shot = screenshot(driver, "quotes_upload_error", WIDTH)
            assert errors and "iv above 5 (percentages? give 0.20 for 20 %)" in errors[0], (errors, shot)
            assert not driver.find_elements("css selector", '[data-testid="stException"]')
        finally:
            driver.quit()
