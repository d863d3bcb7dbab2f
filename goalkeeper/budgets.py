"""Budgets: when a goal's spend calls for an alert or a pause, and who may raise or stop it.

Plain decisions on plain values; the goal workflow applies them, and PostgreSQL's
`goalkeeper_budget_hold` holds every assignment to the same figures.
"""

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from goalkeeper.models import BudgetState, GoalSpec, Id, _Strict
from goalkeeper.statuses import GoalStatus

ALERT_SHARE = 0.8
"""Share of a budget at which its goal's approvers are alerted."""

BUDGET_ALERT_KINDS = ("budget_alert", "budget_spent", "workspace_budget")
"""Alerts about budgets: opened and closed by goals and budget commands, not the
health check."""

Standing = Literal["within", "alert", "spent"]


class BudgetRaise(_Strict):
    """An approver raises a goal's budget: the `raise_budget` update."""

    approver: Id
    usd: float | None = Field(default=None, gt=0, le=1e9, strict=False)
    tokens: int | None = Field(default=None, gt=0, le=10**15)
    comment: str = Field(default="", max_length=2000)
    signature: str | None = Field(default=None, max_length=200)
    """Where the goal requires signatures: the signer's over this request (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the approver's behalf, if not them."""


class GoalStop(_Strict):
    """An approver stops a goal (at its budget, or any time): the `stop` update."""

    approver: Id
    comment: str = Field(default="", max_length=2000)
    signature: str | None = Field(default=None, max_length=200)
    """Where the goal requires signatures: the signer's over this request (goalkeeper.signing)."""
    signed_by: Id | None = None
    """A delegate (the dashboard) that signed on the approver's behalf, if not them."""


def initial(spec: GoalSpec) -> BudgetState:
    return BudgetState(usd=spec.budget_usd, tokens=spec.budget_tokens)


def share(budget: BudgetState, cost_usd: float, tokens_used: int) -> float:
    """The largest share of the goal's budgets spent (0 when it has none)."""
    shares = [0.0]
    if budget.usd is not None:
        # To the millionth, as PostgreSQL counts it: ten $0.10 attempts spend $1.00.
        shares.append(round(cost_usd, 6) / budget.usd)
    if budget.tokens is not None:
        shares.append(tokens_used / budget.tokens)
    return max(shares)


def standing(budget: BudgetState, cost_usd: float, tokens_used: int) -> Standing:
    spent = share(budget, cost_usd, tokens_used)
    if spent >= 1:
        return "spent"
    return "alert" if spent >= ALERT_SHARE else "within"


def describe(budget: BudgetState, cost_usd: float, tokens_used: int) -> str:
    """Spend against budget in a line, e.g. `$0.80 of $1.00 (80%)`."""
    parts = []
    if budget.usd is not None:
        parts.append(f"${cost_usd:.2f} of ${budget.usd:.2f} ({cost_usd / budget.usd:.0%})")
    if budget.tokens is not None:
        parts.append(
            f"{tokens_used:,} of {budget.tokens:,} tokens ({tokens_used / budget.tokens:.0%})"
        )
    return ", ".join(parts)


def deciders(spec: GoalSpec) -> list[list[str]]:
    """Who is asked about a paused goal, level by level: its approvers, then escalation."""
    return [level for level in [spec.approvers, *spec.escalation] if level]


def escalation_due(spec: GoalSpec, budget: BudgetState) -> datetime | None:
    """When the pause goes to the next level of deciders (or, after the last, stops)."""
    if budget.paused_at is None:
        return None
    return budget.paused_at + timedelta(seconds=spec.approval_timeout_seconds * (budget.level + 1))


def amounts(budget: BudgetState) -> str:
    """The budget itself in a line, e.g. `$2.00 and 5,000 tokens`."""
    parts = []
    if budget.usd is not None:
        parts.append(f"${budget.usd:.2f}")
    if budget.tokens is not None:
        parts.append(f"{budget.tokens:,} tokens")
    return " and ".join(parts) or "no limit"


def raise_problem(
    goal_id: str,
    spec: GoalSpec,
    status: GoalStatus,
    budget: BudgetState,
    request: BudgetRaise,
    cost_usd: float,
    tokens_used: int,
) -> str | None:
    """Why a raise cannot count, or None; the update's validator says it to the sender.

    A raise must go above both the budget and what is spent already: one that would
    leave the goal paused decides nothing.
    """
    goal = f"goal {goal_id!r}"
    problem = decider_problem(goal, spec, status, request.approver, "raise the budget of")
    if problem:
        return problem
    if request.usd is None and request.tokens is None:
        return f"budget raise of {goal} names no amount; expected usd or tokens (or both)"
    if budget.usd is None and budget.tokens is None:
        return (
            f"{goal} has no budget to raise; expected a goal started with budget_usd or "
            "budget_tokens"
        )
    for unit, new, old, spent in (
        ("usd", request.usd, budget.usd, cost_usd),
        ("tokens", request.tokens, budget.tokens, tokens_used),
    ):
        if new is None:
            continue
        floor = max(old or 0, spent)
        if new <= floor:
            return (
                f"budget raise of {goal} rejected: {unit} {new:g} is not above "
                f"{'the budget' if floor == old else 'the spend'} so far ({floor:g}); "
                "expected a higher amount"
            )
    if standing(raised(budget, request), cost_usd, tokens_used) == "spent":
        unit = "usd" if request.usd is None else "tokens"
        return (
            f"budget raise of {goal} rejected: its {unit} budget is spent too "
            f"({describe(budget, cost_usd, tokens_used)}); expected a raise of {unit} as well"
        )
    return None


def stop_problem(goal_id: str, spec: GoalSpec, status: GoalStatus, request: GoalStop) -> str | None:
    """Why a stop cannot count, or None."""
    return decider_problem(f"goal {goal_id!r}", spec, status, request.approver, "stop")


def raised(budget: BudgetState, request: BudgetRaise) -> BudgetState:
    """The budget after a raise: a new budget, alerted and paused afresh when due."""
    return BudgetState(
        usd=request.usd if request.usd is not None else budget.usd,
        tokens=request.tokens if request.tokens is not None else budget.tokens,
        raises=budget.raises + 1,
    )


def decider_problem(
    goal: str, spec: GoalSpec, status: GoalStatus, approver: str, action: str
) -> str | None:
    """Why `approver` may not `action` a goal: it has ended, or they are none of those
    asked about it (its approvers, escalation levels included)."""
    if status is not GoalStatus.RUNNING:
        return f"{goal} has ended ({status}); expected a running goal"
    allowed = sorted({name for level in deciders(spec) for name in level})
    if approver not in allowed:
        return (
            f"{approver!r} may not {action} {goal}; expected one of its approvers {allowed}"
            if allowed
            else f"{goal} names no approvers who may {action} it"
        )
    return None
