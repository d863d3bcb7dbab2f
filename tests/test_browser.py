"""The browser tests' footing: headless Chromium reaches the served dashboard, waits for
the workers' writes while the test's loop runs them, and takes full-page screenshots."""

import json
import struct
from pathlib import Path
from typing import Any

import asyncpg
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from temporalio.client import Client

from store.tokens import new_token
from tests import web
from tests.helpers import goal_spec, start_goal


def shown_json(driver: WebDriver) -> Any:
    """The JSON document the browser shows (Chromium puts it in a <pre>)."""
    return json.loads(driver.find_element(By.TAG_NAME, "pre").text)


async def test_the_browser_reads_the_api_over_http(
    dashboard: str, browser: webdriver.Chrome, pool: asyncpg.Pool
) -> None:
    # Reading needs a token: signed in once, the browser's cookie reads the API too.
    web.sign_in(browser, dashboard, (await new_token(pool, "reader", all_workspaces=True))["token"])
    browser.get(f"{dashboard}/api/v1/health")
    health = shown_json(browser)
    assert health["postgres"] == {"reachable": True}
    assert health["temporal"] == {"reachable": True}

    browser.get(f"{dashboard}/openapi.json")
    assert shown_json(browser)["info"]["title"] == "Goalkeeper"


async def test_a_page_shows_what_the_workers_write_while_the_browser_waits(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    web.sign_in(browser, dashboard, (await new_token(pool, "reader", [workspace]))["token"])

    def goal_listed(driver: WebDriver) -> Any:
        driver.get(f"{dashboard}/api/v1/goals/{handle.id}")
        body = shown_json(driver)
        return body if body.get("goal_id") == handle.id else False

    goal = await web.wait_until(browser, goal_listed, f"goal {handle.id} in the read model")
    assert (goal["workspace"], goal["tasks_total"]) == (workspace, 1)
    await handle.terminate()


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_screenshots_show_the_whole_page_at_laptop_and_phone_sizes(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = (
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<body style="margin:0"><div style="height:2000px">tall</div></body>'
    )
    browser.get(f"data:text/html,{page}")

    laptop = web.screenshot(browser, tmp_path / "laptop.png", web.LAPTOP)
    phone = web.screenshot(browser, tmp_path / "docs" / "phone.png", web.PHONE)

    assert png_size(laptop) == (1280, 2000)
    assert png_size(phone) == (390, 2000)
    assert browser.execute_script("return window.innerWidth") == 1280
