"""A task's page on the dashboard, in a real browser: its attempts, tool calls, notes and
resolved result; a failed task retried with a button, and the goal runs it again; the
cancel refused to a non-approver with the reason and taken from an approver; and the
pages of goal ids that hold '/tasks/'."""

import asyncio
import os
from pathlib import Path
from typing import Literal

import asyncpg
import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents.runner import Work, WorkResult
from tests import web
from tests.helpers import (
    PATIENCE,
    ROOT,
    eventually,
    goal_spec,
    new_goal_id,
    running_agents,
    start_goal,
    wait_task,
)
from tests.test_dashboard import SCREENSHOTS, on, sign_in, token
from tests.test_task_attempts import LARGE, fails_then_succeeds
from workflows.task import TaskWorkflow


async def test_the_task_page_shows_attempts_retries_a_failed_task_and_its_screenshots(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    tasks = [
        {"id": "research", "title": "Research the market", "skill": "writing"},
        {"id": "draft", "title": "Draft it", "skill": "writing", "depends_on": ["research"]},
    ]
    spec = goal_spec(
        workspace=workspace,
        tasks=[
            {
                "id": "q3",
                "title": "Quarterly market report",
                "goal": {"title": "Quarterly market report", "tasks": tasks},
            }
        ],
        approvers=["ops-lead"],
        max_attempts=1,
        on_task_failure="ask_approver",
    )
    parent = new_goal_id()
    goal_id = f"{parent}/q3"  # a sub-goal: its id holds a slash

    async def hook(work: Work) -> WorkResult:
        if work.task_id == "draft":
            return WorkResult(result="the draft")
        return await fails_then_succeeds(work)

    async with running_agents(client, pool, workspace, hook):
        goal = await start_goal(client, spec, task_queue, parent)
        await eventually(
            lambda: pool.fetchval(
                "SELECT true FROM tasks WHERE goal_id = $1 AND task_id = 'research' "
                "AND status = 'failed'",
                goal_id,
            ),
            what="the first attempt failed, in the read model",
        )
        page = f"{dashboard}/goals/{goal_id}/tasks/research"
        browser.get(page)
        await sign_in(browser, await token(pool, "intern", workspace), "intern")

        def failed_once(d: WebDriver) -> bool:
            attempts = d.find_element(By.ID, "attempts").text
            return "attempt 1" in attempts and "the index was down" in attempts

        await web.wait_until(browser, failed_once, "the failed attempt on the page")
        attempts = browser.find_element(By.ID, "attempts").text
        assert "attempt 1: searching <b>2</b> sources" in attempts  # a note is text, not markup
        assert "search-1" in attempts and "$0.0021" in attempts
        assert not browser.find_elements(By.ID, "reassign")  # a failed task has ended

        # Only the goal's approvers may: anyone else is refused, and told why.
        await on(browser, "#retry button[value=approve]", WebElement.click)

        def refused(d: WebDriver) -> str | Literal[False]:
            out = "return document.querySelector('#retry .answer').textContent"
            said = str(d.execute_script(out))
            return said if "intern" in said else False

        said = await web.wait_until(browser, refused, "the refusal under the retry form")
        assert "may not decide" in said, said
        await sign_in(browser, await token(pool, "ops-lead", workspace), "ops-lead")
        await on(browser, "#retry input[name=comment]", lambda e: e.send_keys("the index is up"))
        await on(browser, "#retry button[value=approve]", WebElement.click)

        def done(d: WebDriver) -> bool:
            cards = d.find_elements(By.CSS_SELECTOR, "#attempts .attempt")
            return len(cards) == 2 and "completed" in d.find_element(By.ID, "task").text

        await web.wait_until(browser, done, "the retried attempt, completed, on the page")
        assert (await asyncio.wait_for(goal.result(), PATIENCE)).status is GoalStatus.COMPLETED

    browser.get(page)  # the page as the goal ended
    latest = browser.find_element(By.CSS_SELECTOR, '#attempts [data-attempt="2"]').text
    assert "attempt 2" in latest and "writing it up" in latest
    assert "cost\nunknown" in latest or "unknown (no price known)" in latest
    assert "search-2" in latest and "timeout" in latest and "no answer in 30 s" in latest
    assert not browser.find_elements(By.ID, "retry")  # nothing left to retry
    # The large result, resolved from its reference, shown to a bound with a link to it all.
    shown = browser.find_element(By.CSS_SELECTOR, "#result pre.result").text
    assert shown.startswith("line 000000 of the long report") and len(shown) < len(LARGE)
    link = browser.find_element(By.CSS_SELECTOR, "#result a")
    assert link.get_attribute("href") == f"{dashboard}/api/v1/goals/{goal_id}/tasks/research/result"
    context = browser.find_element(By.CSS_SELECTOR, '[data-attempt="2"] details.context')
    context.find_element(By.TAG_NAME, "summary").click()
    assert '"task_id": "research"' in context.text or '"id": "research"' in context.text

    # The goal page links each task's page, from its list and its graph.
    browser.get(f"{dashboard}/goals/{goal_id}")
    hrefs = {
        a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "#tasks a, #graph a")
    }
    assert f"{dashboard}/goals/{goal_id}/tasks/draft" in hrefs
    browser.find_element(By.CSS_SELECTOR, "#tasks a[href$='/tasks/research']").click()
    await web.wait_until(
        browser,
        lambda d: "Research the market" in d.find_element(By.TAG_NAME, "h1").text,
        "the task page",
    )

    where = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    where = where if where.is_absolute() else ROOT / where
    browser.get(page)
    for size in web.SIZES:
        shot = web.screenshot(browser, where / f"task-{size.name}.png", size)
        assert shot.stat().st_size > 5_000, shot


async def test_cancel_is_refused_with_the_reason_to_a_non_approver_and_taken_from_one(
    dashboard: str,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
) -> None:
    goal = await start_goal(client, goal_spec(1, workspace, approvers=["ops-lead"]), task_queue)
    await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    page = f"{dashboard}/goals/{goal.id}/tasks/t1"

    async def cancel_as(person: str) -> None:
        browser.delete_all_cookies()
        browser.get(page)
        await sign_in(browser, await token(pool, person, workspace), person)
        await web.wait_until(
            browser, lambda d: "assigned" in d.find_element(By.ID, "task").text, "assigned"
        )
        assert not browser.find_elements(By.ID, "retry")  # it has not failed
        await on(browser, "#actions summary", WebElement.click)
        await on(browser, "#cancel input[name=comment]", lambda e: e.send_keys("not needed"))
        browser.execute_script("window.confirm = () => true;")
        await on(browser, "#cancel button", WebElement.click)

    def answered(d: WebDriver) -> str | Literal[False]:
        text = d.execute_script("return document.querySelector('#cancel .answer')?.textContent")
        return text if text and text != "sending…" else False

    await cancel_as("viewer")
    said = await web.wait_until(browser, answered, "the API's answer under the form")
    assert "'viewer' may not cancel" in said, said
    task = await client.get_workflow_handle(f"{goal.id}/t1").query(TaskWorkflow.status)
    assert task.status is TaskStatus.ASSIGNED  # nothing was taken
    await cancel_as("ops-lead")  # taken: the task ends, and its forms go with it
    report = await asyncio.wait_for(goal.result(), PATIENCE)
    assert report.tasks[0].outcome is TaskStatus.SKIPPED, report
    assert "cancelled by 'ops-lead'" in (report.tasks[0].error or ""), report


async def test_goal_ids_with_tasks_in_them_keep_their_pages(
    api: httpx.AsyncClient, client: Client, task_queue: str, workspace: str
) -> None:
    # P/tasks is the sub-goal of P's task 'tasks'; P/tasks/x that of its task 'x'.
    inner = {"title": "Inner", "tasks": [{"id": "t1", "title": "Task 1", "skill": "writing"}]}
    middle = {"title": "Middle", "tasks": [{"id": "x", "title": "X", "goal": inner}]}
    outer = [{"id": "tasks", "title": "Middle", "goal": middle}]
    goal = await start_goal(client, goal_spec(0, workspace, tasks=outer), task_queue)
    await wait_task(client, f"{goal.id}/tasks/x", "t1", TaskStatus.ASSIGNED)

    async def page(path: str) -> str:
        answer = await api.get(f"http://localhost{path}")
        assert answer.status_code == 200, answer.text
        return answer.text

    assert '<section id="summary"' in await page(f"/goals/{goal.id}/tasks")  # P/tasks
    task = await page(f"/goals/{goal.id}/tasks/tasks")  # P's task 'tasks'
    assert '<section id="attempts"' in task and "Middle" in task
    # P has no task 'x': the page is the goal P/tasks/x's.
    assert '<section id="summary"' in await page(f"/goals/{goal.id}/tasks/x")
    inner_task = await page(f"/goals/{goal.id}/tasks/x/tasks/t1")  # P/tasks/x's task t1
    assert '<section id="attempts"' in inner_task and "attempt 1" in inner_task
    missing = await api.get(f"http://localhost/goals/{goal.id}/tasks/nope")
    assert missing.status_code == 404 and "nope" in missing.text
    await goal.terminate()
