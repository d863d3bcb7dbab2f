"""`GoalBudget`: a goal's budget in its workflow: alert, pause, escalate, raise and stop.

The decisions are the core's (`goalkeeper.budgets`); this shell records them. Every
assignment is also held to the budget in PostgreSQL, so a pause holds at any size,
partitions and sub-goals included, while the goal asks its approvers.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime
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
        wake: Callable[[], None],
    ) -> None:
        self.goal_id, self.goal_run_id, self.header = goal_id, goal_run_id, header
        self.state = state or budgets.initial(header)
        self._halt = halt
        """Stops the goal: running tasks aborted, the rest skipped."""
        self._wake = wake
        """Has the goal's loop look again (a decision's deadline has come)."""
        self._deciding = asyncio.Lock()
        """Raises, stops and escalations are taken one at a time, each on the one before."""
        self._deadline: asyncio.Task[None] | None = None
        self._held: str | None = None
        """Why PostgreSQL refuses the goal's assignments now, if it does."""

    @property
    def stopped(self) -> str | None:
        return self.state.stopped

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

    async def held(self, why: str | None) -> None:
        """PostgreSQL refuses (or refuses no more) the goal's assignments: a budget over it
        is spent, its workspace's or a goal's it runs for. Recorded and alerted on, since
        that budget's owners, not this goal's approvers, decide."""
        if why == self._held or self.paused:
            return
        subject = f"{self.goal_id} (held)"
        if why is None:
            self._held = None
            await self._record(None, "", close=("budget_spent",), subject=subject)
            return
        self._held = why
        self.state.holds += 1
        await self._record(
            EventKind.GOAL_PAUSED,
            f"goal {self.goal_id!r} paused: {why}; no new assignment starts until that "
            "budget is raised",
            key=("held", self.state.holds),
            open_alert=BudgetAlert(
                kind="budget_spent",
                subject=subject,
                message=f"goal {self.goal_id!r} paused: {why}",
                action="raise that budget: `starter.py budget set --workspace W --usd N` "
                "for a workspace's, `starter.py budget raise GOAL` for a goal's",
            ),
        )

    async def watch(self, cost_usd: float, tokens_used: int, refused: bool = False) -> None:
        """Alert, pause and escalate as the spend and the clock call for (the main loop
        calls this after each step; a deadline wakes it). `refused`: PostgreSQL refused an
        assignment for this budget, though not every report that spent it is here yet."""
        state = self.state
        if not self.limited or self.stopped is not None:
            return
        standing = "spent" if refused else budgets.standing(state, cost_usd, tokens_used)
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
        async with self._deciding:  # a raise taken meanwhile ends the pause
            due = budgets.escalation_due(self.header, state)
            if due is None or self.stopped is not None:
                return
            if workflow.now() < due:
                self._alarm(due)
                return
            levels = budgets.deciders(self.header)
            if state.level + 1 < len(levels):
                state.level += 1
                await self._record(
                    EventKind.BUDGET_ESCALATED,
                    f"no budget decision on {goal} within "
                    f"{self.header.approval_timeout_seconds}s; escalated to {levels[state.level]}",
                    key=(state.level,),
                )
                self._alarm(budgets.escalation_due(self.header, state))
                return
            await self._stop(
                f"stopped at its budget: no decision at any of {len(levels)} approval levels",
                "goalkeeper",
            )

    def _alarm(self, due: datetime | None) -> None:
        """One timer for the pause's next deadline: it wakes the goal's loop."""
        if due is None or self._deadline is not None:
            return

        async def ring() -> None:
            await workflow.sleep(due - workflow.now(), summary="budget decision deadline")
            self._deadline = None
            self._wake()

        self._deadline = asyncio.create_task(ring())

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
            new.holds = self.state.holds
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
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
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
            await self._record(None, "", close=("budget_alert", "budget_spent"))
        if self._held is not None:
            await self._record(None, "", close=("budget_spent",), subject=f"{self.goal_id} (held)")

    async def _stop(self, why: str, by: str, apart: bool = False) -> None:
        self.state.stopped = why
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
        subject: str | None = None,
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
            close_alerts=[BudgetAlert(kind=k, subject=subject or self.goal_id) for k in close],
        )
        summary = f"record {kind or 'budget alerts closed'}"
        if apart:
            await record_apart(BudgetActivities.record_budget, change, summary)
        else:
            await record(BudgetActivities.record_budget, change, summary)
