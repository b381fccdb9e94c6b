"""The marks of every real-browser test: `-m browser` selects them, and they skip without Debian's
Chromium and its driver."""
import pytest

from tools.browser import CHROMEDRIVER, CHROMIUM

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                              "/usr/bin/chromedriver): apt-get install -y chromium chromium-driver"),
]
