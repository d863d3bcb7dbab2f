"""The dashboard in a real browser: live progress, the goal page's event trail, approving
from the inbox, the API docs; and each page's screenshots at laptop and phone sizes."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import asyncpg
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from store.tokens import new_token
from tests import web
from tests.helpers import ROOT, SimulatedAgents, goal_spec, report, start_goal, wait_task

SCREENSHOTS = "GOALKEEPER_SCREENSHOTS"
"""Where `make screenshots` has the pages' screenshots written (docs/screenshots)."""


def bar(driver: WebDriver, goal_id: str) -> float | None:
    """The progress bar's value a person sees for `goal_id` on the page, if it is shown.

    Read in one script, as the page may swap the bar for a fresh one at any moment."""
    value = driver.execute_script(
        "const bar = [...document.querySelectorAll('.progress[data-goal]')]"
        ".find((b) => b.dataset.goal === arguments[0]);"
        "return bar ? bar.getAttribute('aria-valuenow') : null;",
        goal_id,
    )
    return None if value is None else float(value)


async def on(driver: WebDriver, selector: str, action: Callable[[WebElement], object]) -> None:
    """Act on the element `selector` finds, finding it again if the page has just swapped
    its region for a fresh one (live pages do)."""

    def done(d: WebDriver) -> bool:
        action(d.find_element(By.CSS_SELECTOR, selector))
        return True

    await web.wait_until(driver, done, f"to act on {selector}")


async def token(pool: asyncpg.Pool, person: str, workspace: str) -> str:
    """A new token for `person` in `workspace`."""
    return str((await new_token(pool, person, [workspace]))["token"])


async def sign_in(driver: WebDriver, token: str, person: str) -> None:
    """Paste a token in the page's header, as a person does, and wait for whom it names."""
    await on(driver, "#token input[name=token]", lambda e: e.send_keys(token))
    await on(driver, "#token button", WebElement.click)

    def named(d: WebDriver) -> bool:
        return d.find_element(By.ID, "acting-as").text == f"acting as {person}"

    await web.wait_until(driver, named, f"the header to say 'acting as {person}'")


async def test_a_progress_bar_advances_live_while_the_goal_runs(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    handle = await start_goal(client, goal_spec(4, workspace, max_running_tasks=1), task_queue)
    await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    browser.get(f"{dashboard}/?workspace={workspace}")
    await sign_in(browser, await token(pool, "viewer", workspace), "viewer")
    await web.wait_until(browser, lambda d: bar(d, handle.id) == 0.0, "the goal's bar at 0 %")

    seen: list[float] = []

    def advanced(driver: WebDriver) -> bool:
        value = bar(driver, handle.id)  # no reload: the page refreshes its bars itself
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        return value == 100.0

    async with SimulatedAgents(client, pool, handle.id, delay=0.5):
        await web.wait_until(browser, advanced, "the goal's bar to reach 100 % on its own")
    assert (await handle.result()).status is GoalStatus.COMPLETED
    assert seen[0] == 0.0 and seen == sorted(seen) and len(seen) >= 3, seen
    card = browser.find_element(By.CSS_SELECTOR, f'[data-goal-id="{handle.id}"]').text
    assert "4 of 4 tasks done" in card and "completed" in card


async def test_the_goal_page_follows_the_goals_events(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    handle = await start_goal(client, goal_spec(2, workspace), task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    browser.get(f"{dashboard}/goals/{handle.id}")
    assert "Sign in" in browser.find_element(By.TAG_NAME, "h1").text  # no token, no goal
    await sign_in(browser, await token(pool, "viewer", workspace), "viewer")
    await web.wait_until(
        browser, lambda d: "0 of 2 tasks done" in d.find_element(By.ID, "summary").text, "0 of 2"
    )

    await report(client, first)

    def reported(driver: WebDriver) -> bool:
        trail = driver.find_element(By.ID, "trail").text
        tasks = driver.find_element(By.ID, "tasks").text
        return (
            "task completed" in trail
            and "1 of 2 tasks done" in driver.page_source
            and ("completed" in tasks)
        )

    await web.wait_until(browser, reported, "the report in the trail, the tasks and the bar")
    await handle.terminate()


async def test_an_approver_approves_from_the_inbox_and_the_goal_completes(
    database_url: str,
    temporal_server: TemporalDevServer,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    # Reads open, as `up` serves the dashboard: the inbox shows without a token, but
    # deciding needs one.
    settings = Settings(
        database_url=database_url, temporal_address=temporal_server.address, api_open_reads=True
    )
    with web.serve(create_app(settings)) as dashboard:
        await _approve_from_the_inbox(dashboard, browser, client, pool, task_queue, workspace)


async def _approve_from_the_inbox(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    tasks = [{"id": "sign", "title": "Sign off", "skill": "writing", "requires_approval": True}]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"])
    handle = await start_goal(client, spec, task_queue)
    view = await wait_task(client, handle.id, "sign", TaskStatus.ASSIGNED)
    await report(client, view, result="the release notes, final")
    await wait_task(client, handle.id, "sign", TaskStatus.AWAITING_APPROVAL)

    browser.get(f"{dashboard}/approvals?approver=ops-lead")
    item = f'[data-task="{handle.id}/sign"]'

    def listed(driver: WebDriver) -> Any:
        found = driver.find_elements(By.CSS_SELECTOR, item)
        return found[0] if found else False

    await web.wait_until(browser, listed, "the task in the inbox")
    result = browser.find_element(By.CSS_SELECTOR, f"{item} pre.result").text
    assert result == "the release notes, final"
    approve = f"{item} button[value=approve]"

    def answer(containing: str) -> Callable[[WebDriver], str | Literal[False]]:
        def shown(driver: WebDriver) -> str | Literal[False]:
            text = driver.execute_script(
                "const out = document.querySelector(arguments[0]);"
                "return out ? out.textContent : '';",
                f"{item} .answer",
            )
            return text if containing in text else False

        return shown

    await on(browser, approve, WebElement.click)
    await web.wait_until(browser, answer("paste your API token"), "no token: nothing sent")

    await sign_in(browser, await token(pool, "intern", workspace), "intern")
    await on(browser, approve, WebElement.click)
    refused = await web.wait_until(browser, answer("intern"), "the refusal, naming intern")
    assert "may not decide" in refused  # the validator's own words reach the person

    await sign_in(browser, await token(pool, "ops-lead", workspace), "ops-lead")
    await on(browser, f"{item} textarea[name=comment]", lambda e: e.send_keys("good to ship"))
    await on(browser, approve, WebElement.click)

    assert (await handle.result()).status is GoalStatus.COMPLETED
    await web.wait_until(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, item), "gone")
    browser.get(f"{dashboard}/goals/{handle.id}")
    summary = browser.find_element(By.ID, "summary").text
    assert "1 of 1 tasks done" in summary and "completed" in summary


def test_the_api_docs_render_without_the_internet(
    dashboard: str, browser: webdriver.Chrome
) -> None:
    browser.get(f"{dashboard}/docs")
    operations = WebDriverWait(browser, web.WAIT_SECONDS).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"),
        "Swagger UI's operations",
    )
    paths = {o.text.replace("\u200b", "") for o in operations}
    assert {"/api/v1/goals", "/api/v1/goals/{goal_id}/events", "/api/v1/approvals"} <= paths


async def test_screenshots_of_every_page(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    tasks = [
        {"id": "research", "title": "Research the market", "skill": "research"},
        {"id": "draft", "title": "Draft it", "skill": "writing", "depends_on": ["research"]},
        {
            "id": "review",
            "title": "Review the report",
            "skill": "writing",
            "depends_on": ["draft"],
            "requires_approval": True,
        },
        {"id": "publish", "title": "Publish it", "skill": "writing", "depends_on": ["review"]},
    ]
    spec = goal_spec(workspace=workspace, tasks=tasks, approvers=["ops-lead"], budget_usd=5.0)
    spec["title"] = "Quarterly market report"
    handle = await start_goal(client, spec, task_queue)
    for task_id in ("research", "draft", "review"):
        view = await wait_task(client, handle.id, task_id, TaskStatus.ASSIGNED)
        await report(client, view, result=f"{task_id}: done, with sources", cost_usd=0.42)
    await wait_task(client, handle.id, "review", TaskStatus.AWAITING_APPROVAL)

    browser.get(dashboard)
    await sign_in(browser, await token(pool, "ops-lead", workspace), "ops-lead")
    where = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    where = where if where.is_absolute() else ROOT / where
    pages = {
        "goals": f"/?workspace={workspace}",
        "goal": f"/goals/{handle.id}",
        "approvals": "/approvals?approver=ops-lead",
        "agents": f"/agents?workspace={workspace}",
        "costs": f"/costs?by=task&workspace={workspace}",
        "suggestions": "/suggestions",
        "health": "/health",
    }
    for name, path in pages.items():
        browser.get(dashboard + path)
        await web.wait_until(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text, name)
        for size in web.SIZES:
            shot = web.screenshot(browser, where / f"{name}-{size.name}.png", size)
            assert shot.stat().st_size > 5_000, shot
    await handle.terminate()
