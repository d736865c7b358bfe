"""Headless Chromium for the inbox's browser tests and benchmarks (selenium: the dev extra).

Debian's ``chromium`` and ``chromium-driver`` packages (installed by ``.ci/run``) give a
browser and a driver of the same version.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(window: str = "1400,900", *extra: str, prefix: str = "swsync-chromium-") -> tuple[WebDriver, str]:
    """Start headless Chromium with a fresh profile; return the driver and the profile's directory.

    The caller quits the driver and removes the directory.
    """
    from selenium import webdriver  # imported where used: bench modules import without it
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix=prefix)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={window}", *extra, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options), profile
