"""Headless Chromium driven by Selenium, for the explorer's tests, benchmark and screenshots.

Needs Debian's ``chromium`` and ``chromium-driver`` (or ``$CHROMIUM`` and
``$CHROMEDRIVER``) and ``selenium`` (the ``dev`` extra). Chromium starts with no network
of its own (no background fetches, no component updates), a fresh profile, and WebGL
in software where there is no GPU.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--force-device-scale-factor=1", "--hide-scrollbars")


def binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver), or None where either is missing."""
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def chrome(width: int = 1600, height: int = 1000) -> Iterator:
    """A headless Chromium whose viewport is ``width`` x ``height`` CSS pixels, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = binaries()
    if found is None:
        raise RuntimeError("Chromium or ChromeDriver not found: apt-get install chromium chromium-driver "
                           "(or set CHROMIUM and CHROMEDRIVER)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    profile = tempfile.mkdtemp(prefix="repscope-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        # the window size includes no browser frame in headless mode, but make sure of the viewport
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if inner != [width, height]:
            driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_explorer(driver, page, fragment: str = "") -> float:
    """Load the explorer page (a path) and wait for its first view; return its time in ms
    from the start of navigation (a fresh load, even where only the fragment differs)."""
    driver.get("about:blank")
    driver.get(f"file://{os.fspath(page)}{'#' + fragment if fragment else ''}")
    return driver.execute_async_script("const done = arguments[arguments.length - 1];"
                                       "window.repscope.ready.then(done);")


def errors(driver) -> list[str]:
    """The console's error messages (level SEVERE) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
