"""Checks of reported results before they count: their references, and the set shape
(`expects`) some tasks must give."""

import asyncpg
from temporalio import activity

from activities.plans import planned_tasks
from activities.requests import load_request
from goalkeeper.compiling import parse_compiled
from goalkeeper.errors import InvalidGoalSpec, InvalidRunbook
from goalkeeper.records import CheckResult
from goalkeeper.references import reported_reference
from goalkeeper.requests import (
    TriageAnswer,
    goal_from_triage,
    parse_triage,
    request_goal_id,
    triage_goal_problems,
)
from goalkeeper.runbooks import runbook_named
from goalkeeper.validation import validate_goal_spec
from store.results import UnresolvedReference, reference_problem, resolve
from store.runbooks import fetch_runbook


class CheckActivities:
    """Judges reported results before they count; holds the worker's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def check_result(self, check: CheckResult) -> str | None:
        """Why the result may not count, or None when it may: it refers to anything but
        a result stored for the report's own assignment, or is not what the task expects."""
        reference = reported_reference(check.result)
        if isinstance(reference, str):
            return reference
        if reference is not None:
            problem = await reference_problem(self.pool, reference, check.assignment_id)
            if problem is not None:
                return problem
        if check.expects is None:
            return None
        try:
            result = await resolve(self.pool, check.result)
        except UnresolvedReference as exc:
            return str(exc)
        if check.expects == "triage":
            return await self._triage_problem(check, result)
        if check.expects == "plan":
            try:
                await planned_tasks(self.pool, check.goal_id or "", check.goal_run_id or "", result)
            except (InvalidGoalSpec, UnresolvedReference) as exc:
                return str(exc)
            return None
        if check.expects == "deliverable":
            compiled = parse_compiled(result)
            return compiled if isinstance(compiled, str) else None
        return f"expects: unknown kind {check.expects!r}; expected triage, plan or deliverable"

    async def _triage_problem(self, check: CheckResult, result: object) -> str | None:
        triage = parse_triage(result)
        if isinstance(triage, str):
            return triage
        if isinstance(triage, TriageAnswer):
            return None
        request = await load_request(self.pool, check.request_id or "")
        if request is None:
            return f"request {check.request_id!r} of this triage is not stored"
        lowered = triage_goal_problems(triage, check.request_id or "", request)
        if lowered:
            return "the proposed goal is invalid: " + "; ".join(lowered)
        spec = goal_from_triage(triage, request)
        named = runbook_named(spec)
        try:
            runbook = None if named is None else await fetch_runbook(self.pool, *named)
            validate_goal_spec(spec, request_goal_id(check.request_id or ""), runbook)
        except (InvalidGoalSpec, InvalidRunbook) as exc:
            return f"the proposed goal is invalid: {exc}"
        return None
