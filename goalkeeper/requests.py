"""Requests: a person's question, which a triage agent answers or turns into a goal.

The triage is a task like any other (skill `triage`), in a goal of its own; its result
must be a `Triage`, and one that is not is sent back to the agent with the reason. Pure,
so the workflow, the activity that checks results and the CLI apply the same rules.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, JsonValue, StringConstraints, TypeAdapter, ValidationError

from goalkeeper.limits import MAX_ANSWER_CHARS, MAX_QUESTION_CHARS, MAX_REASON_CHARS
from goalkeeper.models import Id, _Strict, describe_validation_error
from goalkeeper.requirements import Requirements, held_to, joining_goal_problems
from goalkeeper.runbooks import RunbookMatch
from goalkeeper.statuses import RequestStatus

Question = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUESTION_CHARS)
]
Reason = Annotated[str, StringConstraints(max_length=MAX_REASON_CHARS)]

TRIAGE_SKILL = "triage"


class RequestSpec(_Strict):
    """What a person asks: the input of a `RequestWorkflow`."""

    question: Question
    workspace: Id = "default"
    approvers: list[Id] = []
    """Approvers of the goal the request may become (a goal may also name its own)."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Triage attempts: failed or invalid triage results each use one."""


class TriageAnswer(_Strict):
    """Triage's verdict on a simple request: here is the answer."""

    kind: Literal["answer"]
    answer: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ANSWER_CHARS)
    ]
    reason: Reason = ""
    """Why a direct answer is enough."""


class TriageGoal(_Strict):
    """Triage's verdict on a request that needs work: this goal (a goal spec)."""

    kind: Literal["goal"]
    goal: dict[str, JsonValue]
    """A goal spec: title, description, and tasks or a runbook with its parameters."""
    reason: Reason = ""
    """Why it needs a goal, and why this runbook."""


Triage = Annotated[TriageAnswer | TriageGoal, Field(discriminator="kind")]
_TRIAGE: TypeAdapter[TriageAnswer | TriageGoal] = TypeAdapter(Triage)


def parse_triage(result: Any) -> TriageAnswer | TriageGoal | str:
    """A triage result, or why it is not one (said so the agent can fix it)."""
    try:
        return _TRIAGE.validate_python(result)
    except ValidationError as exc:
        return (
            describe_validation_error(exc, "triage result")
            + '; expected {"kind": "answer", "answer": "..."} or '
            '{"kind": "goal", "goal": {"title": "...", "tasks": [...] or "runbook": "..."}}'
        )


def requirements_of_request(request_id: str, request: RequestSpec) -> Requirements:
    """What the goal a request becomes must keep: its workspace, and its approvers only."""
    return Requirements(
        owner=f"request {request_id!r}",
        workspace=request.workspace,
        approvers=frozenset(request.approvers),
    )


def triage_goal_problems(triage: TriageGoal, request_id: str, request: RequestSpec) -> list[str]:
    """Why the goal a triage proposes may not run for the request: another workspace,
    signatures off, or approvers the request does not name (a runbook's are its own)."""
    return joining_goal_problems(requirements_of_request(request_id, request), triage.goal, "goal")


def goal_from_triage(triage: TriageGoal, request: RequestSpec) -> dict[str, JsonValue]:
    """The goal spec a triage proposes, in the request's workspace and with its approvers
    (`triage_goal_problems` refuses one that says otherwise)."""
    spec: dict[str, Any] = {k: v for k, v in triage.goal.items() if k != "goal_id"}
    if request.approvers and not spec.get("approvers"):
        spec["approvers"] = list(request.approvers)
    return held_to(requirements_of_request("", request), spec)


def triage_goal_id(request_id: str) -> str:
    """The goal that holds a request's triage task."""
    return f"{request_id}.triage"


def request_goal_id(request_id: str) -> str:
    """The goal a request becomes, when triage says it needs one."""
    return f"{request_id}.goal"


def goal_request_id(goal_id: str) -> str | None:
    """The request whose triage would start this goal, if its id is one a request gives."""
    request_id = goal_id.removesuffix(".goal")
    return request_id if request_id and request_id != goal_id else None


def triage_goal_spec(
    request_id: str, request: RequestSpec, candidates: list[RunbookMatch]
) -> dict[str, Any]:
    """The goal of one triage task: the question, with the runbooks that might fit it."""
    return {
        "title": "Triage: " + _line(request.question, 400),
        "description": request.question,
        "workspace": request.workspace,
        "max_attempts": request.max_attempts,
        "tasks": [
            {
                "id": "triage",
                "title": "Answer the question, or turn it into a goal",
                "skill": TRIAGE_SKILL,
                "description": request.question,
                "guidance": TRIAGE_GUIDANCE,
                "expects": "triage",
                "inputs": {
                    "request_id": request_id,
                    "question": request.question,
                    "runbook_candidates": [c.model_dump(mode="json") for c in candidates],
                },
            }
        ],
    }


TRIAGE_GUIDANCE = (
    'Report {"kind": "answer", "answer": "...", "reason": "..."} when a direct answer is '
    'enough, else {"kind": "goal", "goal": {...}, "reason": "..."} with a goal spec: a '
    "title, a description, and either tasks or one of the runbook candidates with its "
    "parameters. A result that is neither comes back to you with the reason."
)


class RequestView(BaseModel):
    """A request at a moment: the `status` query and the workflow's result."""

    request_id: str
    question: str
    workspace: str
    status: RequestStatus
    kind: Literal["answer", "goal"] | None = None
    answer: str | None = None
    goal_id: str | None = None
    goal_status: str | None = None
    reason: str | None = None
    """Why triage chose what it chose."""
    error: str | None = None


def _line(text: str, limit: int) -> str:
    first = " ".join(text.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"
