"""Work started from the dashboard in a real browser: a question asked in the Ask box
followed to its answer, a goal started from a shipped runbook through the New goal form,
and a task added to a running goal from its page, bad input shown next to each form
first; with the pages' screenshots at laptop and phone sizes (`make screenshots` writes
them to docs/screenshots)."""

import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from temporalio.client import Client

from goalkeeper.runbooks import parse_runbook
from interfaces.agents.runner import SimulatedWork
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.stack import TemporalDevServer
from store.runbooks import add_runbook
from store.tokens import new_token
from tests import web
from tests.helpers import ROOT, events, eventually, goal_spec, running_agents, start_goal

SCREENSHOTS = "GOALKEEPER_SCREENSHOTS"
"""Where `make screenshots` has the pages' screenshots written (docs/screenshots)."""


def shoot(driver: webdriver.Chrome, where: Path, name: str) -> None:
    for size in web.SIZES:
        shot = web.screenshot(driver, where / f"{name}-{size.name}.png", size)
        assert shot.stat().st_size > 5_000, shot


def answer_of(form: str, containing: str) -> Any:
    """What the form's answer shows, once it contains `containing`."""

    def shown(driver: WebDriver) -> str | bool:
        text: str = driver.execute_script(
            "const out = document.querySelector(arguments[0]);return out ? out.textContent : '';",
            f"{form} .answer",
        )
        return text if containing in text else False

    return shown


async def test_ask_and_start_a_goal_from_the_forms_with_screenshots(
    database_url: str,
    temporal_server: TemporalDevServer,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    for path in sorted((ROOT / "runbooks").glob("*.toml")):
        await add_runbook(pool, parse_runbook(path.read_text(), str(path)))
    where = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    where = where if where.is_absolute() else ROOT / where
    settings = Settings(
        database_url=database_url, temporal_address=temporal_server.address, task_queue=task_queue
    )
    token = (await new_token(pool, "ops-lead", [workspace]))["token"]
    hook = SimulatedWork(delay=(0, 0))
    with web.serve(create_app(settings)) as base:
        async with running_agents(client, pool, workspace, hook, ("triage",)):
            web.sign_in(browser, base, token)
            browser.get(f"{base}/start")
            question = "What is our refund policy for annual plans?"
            browser.find_element(By.CSS_SELECTOR, "#ask textarea[name=question]").send_keys(
                question
            )
            browser.find_element(By.CSS_SELECTOR, "#ask button[type=submit]").click()

            def answered(driver: WebDriver) -> bool:
                found = driver.find_elements(By.CSS_SELECTOR, "#request[data-status=answered]")
                return "/requests/request-" in driver.current_url and bool(found)

            await web.wait_until(browser, answered, "the request page with its answer")
            assert question in browser.find_element(By.TAG_NAME, "h1").text
            assert browser.find_element(By.ID, "answer").text
            request_id = browser.current_url.rsplit("/", 1)[1]
            recorded = await pool.fetchval(
                "SELECT workspace FROM requests WHERE request_id = $1", request_id
            )
            assert recorded == workspace
            shoot(browser, where, "request")

        browser.get(f"{base}/start")
        form = "#new-goal"
        Select(
            browser.find_element(By.CSS_SELECTOR, f"{form} select[name=runbook]")
        ).select_by_value("campaign")
        chosen = browser.find_element(By.CSS_SELECTOR, f'{form} fieldset[data-choice="campaign"]')
        assert chosen.is_displayed()
        assert {e.get_attribute("name") for e in chosen.find_elements(By.TAG_NAME, "input")} >= {
            "parameters.quarter",
            "parameters.crm",
            "parameters.leads",
        }
        options = browser.find_elements(By.CSS_SELECTOR, f"{form} select[name=workspace] option")
        assert [o.text for o in options] == [workspace]

        def field(name: str) -> Any:
            return browser.find_element(By.CSS_SELECTOR, f"{form} [name='{name}']")

        field("title").send_keys("Q4 outbound campaign")
        field("parameters.quarter").send_keys("Q4")
        field("parameters.crm").send_keys("Salesforce")
        field("goal_id").send_keys("bad id!")
        field("description").send_keys("Reach the qualified leads before the holidays.")
        browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()
        refused = await web.wait_until(browser, answer_of(form, "bad id!"), "the refusal shown")
        assert "goal_id" in refused
        assert field("goal_id").get_attribute("aria-invalid") == "true"  # the field it names
        assert field("title").get_attribute("aria-invalid") is None
        shoot(browser, where, "start")

        goal_id = f"campaign-{uuid.uuid4().hex[:6]}"
        field("goal_id").clear()
        field("goal_id").send_keys(goal_id)
        browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()

        def opened(driver: WebDriver) -> bool:
            heads = driver.find_elements(By.CSS_SELECTOR, "#summary h1")
            return driver.current_url.endswith(f"/goals/{goal_id}") and bool(heads)

        await web.wait_until(browser, opened, "the started goal's page")
        assert "Q4 outbound campaign" in browser.find_element(By.CSS_SELECTOR, "#summary h1").text

        def listed(driver: WebDriver) -> bool:
            return "Generate the Salesforce import CSV for 500 leads" in driver.page_source

        await web.wait_until(browser, listed, "the runbook's task, its parameters filled")
        row = await pool.fetchrow("SELECT workspace, spec FROM goals WHERE goal_id = $1", goal_id)
        assert row is not None and row["workspace"] == workspace
        await client.get_workflow_handle(goal_id).terminate()


async def test_add_a_task_to_a_running_goal_from_its_page_with_screenshots(
    database_url: str,
    temporal_server: TemporalDevServer,
    browser: webdriver.Chrome,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    where = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    where = where if where.is_absolute() else ROOT / where
    settings = Settings(
        database_url=database_url, temporal_address=temporal_server.address, task_queue=task_queue
    )
    token = (await new_token(pool, "ops-lead", [workspace]))["token"]
    # No agent serves the workspace: the goal runs on, waiting, while a task is added.
    spec = goal_spec(workspace=workspace, approvers=["ops-lead"])
    goal = await start_goal(client, spec, task_queue)
    await eventually(
        lambda: pool.fetchval("SELECT 1 FROM tasks WHERE goal_id = $1", goal.id),
        what="the goal's task in the read model",
    )
    form = "#add-task form"
    with web.serve(create_app(settings)) as base:
        web.sign_in(browser, base, token)
        browser.get(f"{base}/goals/{goal.id}")
        browser.find_element(By.CSS_SELECTOR, "#add-task summary").click()

        def field(name: str) -> Any:
            return browser.find_element(By.CSS_SELECTOR, f"{form} [name='{name}']")

        field("tasks.id").send_keys("follow-up")
        field("tasks.title").send_keys("Follow up with the readers")
        field("tasks.skill").send_keys("writing")
        field("tasks.depends_on").send_keys("t1, nope")
        field("reason").send_keys("the readers asked for more")
        browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()
        refused = await web.wait_until(browser, answer_of(form, "nope"), "the refusal shown")
        assert "depends_on" in refused or "unknown" in refused, refused

        field("tasks.depends_on").clear()
        field("tasks.depends_on").send_keys("t1")
        browser.find_element(By.CSS_SELECTOR, f"{form} button[type=submit]").click()
        await web.wait_until(browser, answer_of(form, "done"), "the task added")

        def listed(driver: WebDriver) -> bool:
            return bool(driver.find_elements(By.CSS_SELECTOR, "#tasks tr[data-task-id=follow-up]"))

        await web.wait_until(browser, listed, "the added task in the goal's tasks")
        shoot(browser, where, "add-task")
    row = await pool.fetchrow(
        "SELECT depends_on, skill FROM tasks WHERE goal_id = $1 AND task_id = 'follow-up'", goal.id
    )
    assert row is not None and (row["depends_on"], row["skill"]) == (["t1"], "writing")
    trail = [r for r in await events(pool, goal.id) if r["kind"] == "tasks_added"]
    assert len(trail) == 1 and "ops-lead" in trail[0]["message"], trail
    await goal.terminate()
