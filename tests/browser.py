"""Headless Chromium for the browser tests (Debian's chromium + chromium-driver); nothing is ever downloaded."""

import contextlib
import shutil
import time

from agentgym.testing import _children

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = "needs Debian's chromium and chromium-driver (bash scripts/system-deps.sh)"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def headless_chromium(profile, monkeypatch, extra_flags=(), capabilities=None, require_clean_exit=False):
    """A Selenium driver of headless Chromium with its profile in ``profile``; on exit it quits and waits up to
    10 s for the browser's processes to end (``require_clean_exit``: fail if any are left behind)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try to download a browser
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *extra_flags, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    for name, value in (capabilities or {}).items():
        options.set_capability(name, value)
    before = _children()
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        deadline = time.monotonic() + 10
        while _children() - before and time.monotonic() < deadline:
            time.sleep(0.1)
        if require_clean_exit:
            assert not _children() - before, "the browser left processes behind"
