"""`GoalBudget`: a goal's budget in its workflow: alert, pause, escalate, raise and stop.

The decisions are the core's (`goalkeeper.budgets`); this shell records them. Every
assignment is also held to the budget in PostgreSQL, so a pause holds at any size,
partitions and sub-goals included, while the goal asks its approvers.
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.budgets import BudgetActivities
    from goalkeeper import budgets
    from goalkeeper.budgets import BudgetRaise, GoalStop
    from goalkeeper.ids import fact_id
    from goalkeeper.models import BudgetState, GoalSpec
    from goalkeeper.records import BudgetAlert, Event, EventKind, RecordBudget
    from goalkeeper.statuses import GoalStatus
    from workflows.messages import parse_message
    from workflows.options import record, record_apart


class GoalBudget:
    """One goal's budget standing, carried across continue-as-new in its checkpoint."""

    def __init__(
        self,
        goal_id: str,
        goal_run_id: str,
        header: GoalSpec,
        state: BudgetState | None,
        halt: Callable[[str], None],
    ) -> None:
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.state = state or budgets.initial(header)
        self._halt = halt
        """Stops the goal: running tasks aborted, the rest skipped."""
        self._deciding = asyncio.Lock()
        """Raises and stops are taken one at a time, each judged on the one before."""
        self.stopped: str | None = None

    @property
    def limited(self) -> bool:
        return self.state.usd is not None or self.state.tokens is not None

    @property
    def paused(self) -> bool:
        return self.state.paused_at is not None and self.stopped is None

    def describe(self, cost_usd: float, tokens_used: int) -> str:
        return budgets.describe(self.state, cost_usd, tokens_used)

    def stage(self, cost_usd: float, tokens_used: int) -> str | None:
        """The goal's stage while paused: what it spent and whom it waits on."""
        if not self.paused:
            return None
        return (
            f"paused: budget ({self.describe(cost_usd, tokens_used)}); waiting on "
            f"{self._waiting_on()} to raise it or stop the goal"
        )

    async def watch(self, cost_usd: float, tokens_used: int) -> timedelta | None:
        """Alert, pause and escalate as the spend and the clock call for (the main loop
        calls this after each step); returns when to look again, if a deadline is due."""
        state = self.state
        if not self.limited or self.stopped is not None:
            return None
        standing = budgets.standing(state, cost_usd, tokens_used)
        spent = self.describe(cost_usd, tokens_used)
        goal = f"goal {self.goal_id!r}"
        if standing != "within" and not state.alerted:
            state.alerted = True
            await self._record(
                EventKind.BUDGET_ALERT,
                f"{goal} has spent {budgets.ALERT_SHARE:.0%} or more of its budget: {spent}",
                open_alert=BudgetAlert(
                    kind="budget_alert",
                    subject=self.goal_id,
                    message=f"{goal} has spent {spent} of its budget",
                    action=f"raise it before it pauses: {self._raise_hint()}",
                ),
            )
        if standing == "spent" and state.paused_at is None:
            state.paused_at, state.level = workflow.now(), 0
            await self._record(
                EventKind.GOAL_PAUSED,
                f"{goal} paused: it has spent its budget ({spent}); no new assignment starts "
                f"and running work finishes; waiting on {self._waiting_on()} to raise it "
                f"({self._raise_hint()}) or stop the goal",
                open_alert=BudgetAlert(
                    kind="budget_spent",
                    subject=self.goal_id,
                    message=f"{goal} paused at its budget ({spent})",
                    action=f"{self._waiting_on()}: {self._raise_hint()}, or "
                    f"`starter.py budget stop {self.goal_id} --as NAME`",
                ),
            )
        due = budgets.escalation_due(self.header, state)
        if due is None:
            return None
        now = workflow.now()
        if now < due:
            return due - now
        levels = budgets.deciders(self.header)
        if state.level + 1 < len(levels):
            state.level += 1
            await self._record(
                EventKind.BUDGET_ESCALATED,
                f"no budget decision on {goal} within {self.header.approval_timeout_seconds}s; "
                f"escalated to {levels[state.level]}",
                key=(state.level,),
            )
            return budgets.escalation_due(self.header, state) - now  # type: ignore[operator]
        await self._stop(
            f"stopped at its budget: no decision at any of {len(levels)} approval levels",
            "goalkeeper",
        )
        return None

    # Raises and stops, from the goal's updates.

    def judge_raise(
        self, payload: tuple[Any, ...], status: GoalStatus, spent: tuple[float, int]
    ) -> BudgetRaise | str:
        request = parse_message(payload, BudgetRaise, "budget raise")
        if isinstance(request, str):
            return request
        if self.stopped is not None:
            return f"goal {self.goal_id!r} is stopping ({self.stopped}); expected a running goal"
        problem = budgets.raise_problem(
            self.goal_id, self.header, status, self.state, request, *spent
        )
        return problem or request

    def judge_stop(self, payload: tuple[Any, ...], status: GoalStatus) -> GoalStop | str:
        request = parse_message(payload, GoalStop, "stop request")
        if isinstance(request, str):
            return request
        if self.stopped is not None:
            return f"goal {self.goal_id!r} is already stopping ({self.stopped})"
        return budgets.stop_problem(self.goal_id, self.header, status, request) or request

    async def take_raise(self, request: BudgetRaise, judge: Callable[[], object]) -> str | None:
        """Raise the budget (one decision at a time); returns why not, if a decision
        taken meanwhile made this one wrong."""
        async with self._deciding:
            problem = judge()
            if isinstance(problem, str):
                return problem
            new = budgets.raised(self.state, request)
            comment = f": {request.comment}" if request.comment else ""
            await self._record(
                EventKind.BUDGET_RAISED,
                f"{request.approver!r} raised the budget of goal {self.goal_id!r} to "
                f"{budgets.amounts(new)}{comment}",
                key=(new.raises,),
                apart=True,
                detail={"approver": request.approver, "usd": new.usd, "tokens": new.tokens},
                set_budget=new,
                close=("budget_alert", "budget_spent"),
            )
            self.state = new
            return None

    async def take_stop(self, request: GoalStop, judge: Callable[[], object]) -> str | None:
        async with self._deciding:
            problem = judge()
            if isinstance(problem, str):
                return problem
            comment = f": {request.comment}" if request.comment else ""
            await self._stop(f"stopped by {request.approver!r}{comment}", request.approver, True)
            return None

    async def close(self) -> None:
        """The goal ended: its budget alerts close."""
        if self.state.alerted or self.state.paused_at is not None:
            await self._record(None, "", close=("budget_alert", "budget_spent"), key=("closed",))

    async def _stop(self, why: str, by: str, apart: bool = False) -> None:
        self.stopped = why
        await self._record(
            EventKind.GOAL_STOPPED,
            f"goal {self.goal_id!r} {why}",
            detail={"by": by},
            apart=apart,
            close=("budget_alert", "budget_spent"),
        )
        self._halt(why)

    def _waiting_on(self) -> str:
        levels = budgets.deciders(self.header)
        if not levels:
            return "nobody (the goal names no approvers)"
        names = levels[min(self.state.level, len(levels) - 1)]
        return "approver " + " or ".join(names)

    def _raise_hint(self) -> str:
        return f"`starter.py budget raise {self.goal_id} --usd N --as NAME`"

    async def _record(
        self,
        kind: EventKind | None,
        message: str,
        *,
        key: tuple[object, ...] = (),
        apart: bool = False,
        detail: dict[str, Any] | None = None,
        open_alert: BudgetAlert | None = None,
        set_budget: BudgetState | None = None,
        close: tuple[str, ...] = (),
    ) -> None:
        """Write one budget fact; from a handler (`apart`) as a regular activity."""
        event = None
        if kind is not None:
            event = Event(
                event_id=fact_id("goal", self.goal_run_id, kind, None, self.state.raises, *key),
                kind=kind,
                message=message,
                goal_id=self.goal_id,
                detail=detail or {},
            )
        change = RecordBudget(
            goal_id=self.goal_id,
            event=event,
            set_budget=set_budget is not None,
            budget_usd=set_budget.usd if set_budget else None,
            budget_tokens=set_budget.tokens if set_budget else None,
            open_alert=open_alert,
            close_alerts=[BudgetAlert(kind=k, subject=self.goal_id) for k in close],
        )
        summary = f"record {kind or 'budget alerts closed'}"
        if apart:
            await record_apart(BudgetActivities.record_budget, change, summary)
        else:
            await record(BudgetActivities.record_budget, change, summary)
