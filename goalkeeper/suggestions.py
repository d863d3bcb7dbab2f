"""Improvement suggestions: what the record of a goal that ended says could be done better.

Plain rules over plain facts (read from PostgreSQL by an activity): each suggestion says
what was seen, what to do about it, and the evidence. A suggestion's id comes from its
goal, kind and subject, so analysing a goal twice suggests nothing new.
"""

import re
import statistics
import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, JsonValue

from goalkeeper.errors import GoalkeeperError
from goalkeeper.limits import MAX_SUBJECT_TEXT_CHARS
from goalkeeper.records import EventKind

SUGGESTION_MADE = EventKind.SUGGESTION_MADE.value
SUGGESTION_ACCEPTED = EventKind.SUGGESTION_ACCEPTED.value
SUGGESTION_DISMISSED = EventKind.SUGGESTION_DISMISSED.value
"""The audit trail's kinds for suggestions and people's decisions on them."""

_NAMESPACE = uuid.UUID("5b0c6f7e-2a53-4d0e-9b61-6f1d4c2e8a90")

MIN_AGENT_ATTEMPTS = 3
"""An agent's record in a skill counts once it has this many attempts."""
MIN_REPEATS = 2
"""The same reason this many times from one approver is a pattern, not an accident."""
EVIDENCE_EXAMPLES = 20
"""Examples a suggestion's evidence lists at most."""
MIN_COST_SAMPLES = 3
COSTLY_FACTOR = 3.0
"""A task costs far more than usual at this many times the median of at least
MIN_COST_SAMPLES earlier goals' runs of it."""


class SuggestionKind(StrEnum):
    """What a suggestion is about."""

    AGENT_FAILING = "agent_failing"
    """An agent failed most of its attempts of a skill."""
    REPEATED_REJECTION = "repeated_rejection"
    """An approver sent work back repeatedly for the same reason."""
    PROVISIONED_ONLY = "provisioned_only"
    """A skill was served only by agents provisioned on the spot."""
    SLOW_APPROVAL = "slow_approval"
    """Approvals waited long, or were escalated."""
    COSTLY_TASK = "costly_task"
    """A task cost far more than the same runbook task usually does."""


class SuggestionStatus(StrEnum):
    """What people decided about a suggestion."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class InvalidSuggestionDecision(GoalkeeperError):
    """A decision on a suggestion that cannot be recorded; the message says why."""

    def __init__(self, suggestion_id: str, message: str) -> None:
        super().__init__(message)
        self.suggestion_id = suggestion_id


class SuggestFor(BaseModel):
    """Look for improvements in the record of a goal that has ended."""

    goal_id: str


class AgentRecord(BaseModel):
    """An agent's recent attempts of one skill, across all goals, and how they ended."""

    agent_id: str
    skill: str
    attempts: int
    failed: int = 0
    timed_out: int = 0
    rejected: int = 0


class Rejection(BaseModel):
    """One time an approver sent work back, with the reason they gave."""

    goal_id: str
    task_id: str | None
    approver: str
    comment: str


class SkillAgents(BaseModel):
    """The agents that made attempts of one skill in the goal."""

    skill: str
    agents: list[str]
    provisioned: list[str]
    attempts: int


class ApprovalWait(BaseModel):
    """How long one approval of a task took, against its timeout, and if it escalated."""

    task_id: str
    waited_seconds: float
    timeout_seconds: int
    escalated: int = 0


class ApprovalEvent(BaseModel):
    """One step in the life of a task's approvals, from the audit trail, oldest first."""

    task_id: str
    kind: str
    """`approval_requested`, `approval_escalated`, or a decision's event."""
    at: datetime
    decided: bool = False
    """A decision's event (its detail names the decision)."""


def approval_waits(events: list[ApprovalEvent], timeout_seconds: int) -> list[ApprovalWait]:
    """How long each request for approval waited for its decision, and whether it escalated.

    A request still undecided when the goal ended counts only if it escalated.
    """
    waiting: dict[str, tuple[datetime, int]] = {}
    waits = []
    for event in events:
        if event.kind == "approval_requested":
            waiting[event.task_id] = (event.at, 0)
        elif event.kind == "approval_escalated" and event.task_id in waiting:
            since, escalated = waiting[event.task_id]
            waiting[event.task_id] = (since, escalated + 1)
        elif event.decided and event.task_id in waiting:
            since, escalated = waiting.pop(event.task_id)
            waits.append(
                ApprovalWait(
                    task_id=event.task_id,
                    waited_seconds=(event.at - since).total_seconds(),
                    timeout_seconds=timeout_seconds,
                    escalated=escalated,
                )
            )
    last = max((e.at for e in events), default=None)
    for task_id, (since, escalated) in waiting.items():
        if escalated and last is not None:
            waits.append(
                ApprovalWait(
                    task_id=task_id,
                    waited_seconds=(last - since).total_seconds(),
                    timeout_seconds=timeout_seconds,
                    escalated=escalated,
                )
            )
    return waits


class TaskCost(BaseModel):
    """A task's cost in this goal, and the costs of the same runbook task in earlier goals."""

    task_id: str
    cost_usd: float
    earlier_usd: list[float] = []


class GoalFacts(BaseModel):
    """What the rules look at, for a goal that ended."""

    goal_id: str
    workspace: str = "default"
    runbook: str | None = None
    escalation_levels: int = 0
    agents: list[AgentRecord] = []
    rejections: list[Rejection] = []
    """This goal's, and for a runbook's goal, those of earlier goals of the runbook."""
    skills: list[SkillAgents] = []
    approvals: list[ApprovalWait] = []
    task_costs: list[TaskCost] = []


class Suggestion(BaseModel):
    """What could be done better, what to do, and what shows it."""

    suggestion_id: str
    goal_id: str
    kind: SuggestionKind
    subject: str
    """What it is about (`agent/skill`, `workspace/skill`, ...): one open suggestion each."""
    message: str
    action: str
    evidence: dict[str, JsonValue]


def suggestion_id(goal_id: str, kind: SuggestionKind, subject: str) -> str:
    """The same goal, kind and subject always give the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{goal_id}\n{kind.value}\n{subject}"))


def suggest(facts: GoalFacts) -> list[Suggestion]:
    """Every suggestion the facts support, in the order of the kinds."""
    return [
        *_agents_failing(facts),
        *_repeated_rejections(facts),
        *_provisioned_only(facts),
        *_slow_approvals(facts),
        *_costly_tasks(facts),
    ]


def normalise(comment: str) -> str:
    """A reason as it compares with others: lower case, words only, single spaces."""
    return " ".join(re.findall(r"[^\W_]+", comment.lower()))


def _make(
    facts: GoalFacts,
    kind: SuggestionKind,
    subject: str,
    message: str,
    action: str,
    evidence: dict[str, JsonValue],
) -> Suggestion:
    return Suggestion(
        suggestion_id=suggestion_id(facts.goal_id, kind, subject),
        goal_id=facts.goal_id,
        kind=kind,
        subject=subject,
        message=message,
        action=action,
        evidence=evidence,
    )


def _agents_failing(facts: GoalFacts) -> list[Suggestion]:
    found = []
    for record in facts.agents:
        bad = record.failed + record.timed_out + record.rejected
        if record.attempts < MIN_AGENT_ATTEMPTS or 2 * bad <= record.attempts:
            continue
        found.append(
            _make(
                facts,
                SuggestionKind.AGENT_FAILING,
                f"{record.agent_id}/{record.skill}",
                f"agent {record.agent_id!r} failed {bad} of its last {record.attempts} "
                f"attempts of skill {record.skill!r}",
                f"take skill {record.skill!r} from agent {record.agent_id!r} (register it "
                "again without it), or find out why it fails",
                record.model_dump(),
            )
        )
    return found


def _repeated_rejections(facts: GoalFacts) -> list[Suggestion]:
    groups: dict[tuple[str, str], list[Rejection]] = {}
    for rejection in facts.rejections:
        reason = normalise(rejection.comment)
        if reason:
            groups.setdefault((rejection.approver, reason), []).append(rejection)
    found = []
    for (approver, reason), seen in groups.items():
        if len(seen) < MIN_REPEATS or not any(r.goal_id == facts.goal_id for r in seen):
            continue
        where = (
            f"runbook {facts.runbook!r}'s guidance"
            if facts.runbook
            else f"goal {facts.goal_id!r}'s guidance (and that of goals like it)"
        )
        comment = seen[-1].comment.strip()
        found.append(
            _make(
                facts,
                SuggestionKind.REPEATED_REJECTION,
                f"{facts.runbook or facts.goal_id}/{approver}/{reason[:MAX_SUBJECT_TEXT_CHARS]}",
                f"{approver} sent work back {len(seen)} times for the same reason: {comment!r}",
                f"add to {where}: {comment!r}",
                {
                    "approver": approver,
                    "reason": reason,
                    "times": len(seen),
                    "runbook": facts.runbook,
                    "tasks": [f"{r.goal_id}/{r.task_id}" for r in seen],
                },
            )
        )
    return found


def _provisioned_only(facts: GoalFacts) -> list[Suggestion]:
    found = []
    for skill in facts.skills:
        if not skill.agents or set(skill.provisioned) != set(skill.agents):
            continue
        found.append(
            _make(
                facts,
                SuggestionKind.PROVISIONED_ONLY,
                f"{facts.workspace}/{skill.skill}",
                f"skill {skill.skill!r} in workspace {facts.workspace!r} was served only by "
                f"agents provisioned on the spot ({', '.join(skill.provisioned)})",
                f"register a dedicated agent: python starter.py agent register NAME "
                f"--skills {skill.skill} --workspace {facts.workspace}",
                skill.model_dump(),
            )
        )
    return found


def _slow_approvals(facts: GoalFacts) -> list[Suggestion]:
    slow = [a for a in facts.approvals if a.escalated or a.waited_seconds > a.timeout_seconds / 2]
    if not slow:
        return []
    action = (
        'add an escalation level (the spec\'s `escalation`, e.g. [["director"]]) so a '
        "decision that waits moves on"
        if facts.escalation_levels == 0
        else "add approvers to the first level (`approvers`), so a decision waits less"
    )
    escalated = sum(1 for a in slow if a.escalated)
    return [
        _make(
            facts,
            SuggestionKind.SLOW_APPROVAL,
            f"goal:{facts.goal_id}",
            f"{len(slow)} of {len(facts.approvals)} approvals waited more than half their "
            f"timeout" + (f", {escalated} escalated" if escalated else ""),
            action + (f" in runbook {facts.runbook!r}'s goals" if facts.runbook else ""),
            {  # the slowest as examples: the evidence stays small whatever the goal's size
                "approvals": [
                    a.model_dump()
                    for a in sorted(slow, key=lambda a: -a.waited_seconds)[:EVIDENCE_EXAMPLES]
                ],
                "slow": len(slow),
                "escalation_levels": facts.escalation_levels,
            },
        )
    ]


def _costly_tasks(facts: GoalFacts) -> list[Suggestion]:
    found = []
    for task in facts.task_costs:
        if len(task.earlier_usd) < MIN_COST_SAMPLES:
            continue
        usual = statistics.median(task.earlier_usd)
        # Costs are kept to the millionth: 0.3 is 3 times 0.1, whatever floats say.
        if usual <= 0 or round(task.cost_usd, 6) < round(COSTLY_FACTOR * usual, 6):
            continue
        found.append(
            _make(
                facts,
                SuggestionKind.COSTLY_TASK,
                f"{facts.goal_id}/{task.task_id}",
                f"task {task.task_id!r} cost ${task.cost_usd:.4f}, "
                f"{task.cost_usd / usual:.1f}x the usual ${usual:.4f} of runbook "
                f"{facts.runbook!r} ({len(task.earlier_usd)} earlier goals)",
                f"see where it went: python starter.py costs --goal {facts.goal_id} --by task; "
                f"then sharpen task {task.task_id!r}'s guidance in runbook {facts.runbook!r}",
                {
                    "task_id": task.task_id,
                    "cost_usd": task.cost_usd,
                    "median_usd": usual,
                    "samples": len(task.earlier_usd),
                    "runbook": facts.runbook,
                },
            )
        )
    return found
