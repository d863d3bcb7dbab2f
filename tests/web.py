"""The dashboard in a real browser: its own uvicorn server, headless Chromium, waits, screenshots.

Selenium is synchronous and the test's event loop runs the Goalkeeper workers, so two rules
keep browser tests free of deadlocks and timing luck:

- the dashboard is served by `serve` in a thread with its own event loop (and its own
  PostgreSQL pool and Temporal client), so it answers the browser even while a test blocks
  its own loop on a Selenium call;
- anything that waits for work to happen (a page showing a goal's progress, say) goes
  through `wait_until`, which waits in a worker thread, so the test's loop (and the workers
  in it) keep running meanwhile. Short Selenium calls (`get`, `find_element`, `click`) may be
  made directly.
"""

import asyncio
import functools
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait
from starlette.types import ASGIApp

from interfaces.cli.uvicorn_server import SignalFreeServer
from tests.helpers import ROOT

T = TypeVar("T")

WAIT_SECONDS = 60.0
"""How long a page gets to show what a test waits for: generous, so a busy machine passes."""

INSTALL = ROOT / ".ci" / "browser"
"""Installs Debian's chromium and chromium-driver when they are missing (`make browser`)."""

PACKAGES = "chromium chromium-driver"


@contextmanager
def serve(app: ASGIApp, timeout: float = WAIT_SECONDS) -> Iterator[str]:
    """Serve `app` with uvicorn on a free localhost port, in a thread; yield its base URL.

    The socket is bound before the server starts, so no other process can take the port,
    and the URL is yielded only once the app's lifespan has started. The app's connections
    must be made in the server's own loop: give it none (create_app opens its own from
    Settings), never the test's pool or client.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=5
    )
    server = SignalFreeServer(config)  # as `starter.py serve`: waiting agents answered first
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name=f"dashboard:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(
                    f"the dashboard stopped before it started (see the log above): {failures}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start within {timeout:.0f}s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def sign_in(driver: WebDriver, base: str, token: str) -> None:
    """Sign in at `base`/login with a personal token, as a person does; the browser keeps
    it in its cookie for every page and API request after."""
    driver.get(f"{base}/login")
    field = driver.find_element(By.CSS_SELECTOR, "#sign-in input[name=token]")
    field.send_keys(token)
    field.submit()
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.ID, "acting-as").text.startswith("acting as"),
        "the header to say whom the browser acts as",
    )


@functools.cache
def browser_paths() -> tuple[str, str]:
    """(chromedriver, chromium), installing them with `.ci/browser` if either is missing."""
    found = shutil.which("chromedriver"), shutil.which("chromium")
    if None in found:
        done = subprocess.run([str(INSTALL)], check=False)
        found = shutil.which("chromedriver"), shutil.which("chromium")
        if done.returncode != 0 or None in found:
            pytest.fail(
                f"browser tests need chromium and chromedriver on PATH: {INSTALL} could not "
                f"install them; install the Debian packages {PACKAGES} as root",
                pytrace=False,
            )
    driver, chromium = found
    assert driver and chromium
    return driver, chromium


def chrome() -> webdriver.Chrome:
    """Headless Chromium at laptop size, driven by the system's chromedriver.

    The window is 1280x800; as in a real browser its frame takes some height, so pages see
    about 1280x660. `screenshot` emulates exact viewports.
    """
    driver_path, chromium_path = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",  # a container's /dev/shm is often tiny
        f"--window-size={LAPTOP.width},{LAPTOP.height}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=driver_path)
    )
    driver.set_page_load_timeout(WAIT_SECONDS)
    driver.set_script_timeout(WAIT_SECONDS)
    return driver


async def wait_until(
    driver: WebDriver,
    condition: Callable[[WebDriver], T | Literal[False]],
    what: str = "",
    timeout: float = WAIT_SECONDS,
) -> T:
    """Poll `condition` (e.g. `expected_conditions.text_to_be_present_in_element(...)`) until
    it returns something truthy, and return that; fail with `what` after `timeout` seconds.

    It waits in a worker thread, so the test's event loop keeps running its workers. An
    element gone stale (its region swapped) is looked for again, as a missing one is.
    """
    # A live page swaps regions for fresh copies: an element found a moment ago may be gone.
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    return await asyncio.to_thread(wait.until, condition, f"timed out waiting for {what}")


@dataclass(frozen=True)
class Size:
    """A viewport to show pages at, in CSS pixels."""

    name: str
    width: int
    height: int
    mobile: bool


LAPTOP = Size("laptop", 1280, 800, mobile=False)
PHONE = Size("phone", 390, 844, mobile=True)
SIZES = (LAPTOP, PHONE)

MAX_HEIGHT = 12_000
"""Taller pages are cut here; Chromium cannot capture much more in one image."""


def screenshot(driver: webdriver.Chrome, path: Path | str, size: Size = LAPTOP) -> Path:
    """Save a PNG of the whole page (its full height) as seen at `size`, and return its path.

    The viewport is emulated exactly (a phone as a mobile device, so the page's viewport
    meta tag applies), then put back; wait for what the page should show before calling it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {
        "width": size.width,
        "height": size.height,
        "deviceScaleFactor": 1,
        "mobile": size.mobile,
    }
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        height = driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight,"
            " document.body ? document.body.scrollHeight : 0)"
        )
        metrics["height"] = min(max(size.height, int(height)), MAX_HEIGHT)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        if not driver.save_screenshot(str(path)):
            raise RuntimeError(f"could not save a screenshot to {path}")
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path
