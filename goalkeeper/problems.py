"""Work that looks alive and is not: wedged workflows and stalled goals, as findings.

A workflow whose workflow task keeps failing stays `RUNNING` forever; Temporal marks it
with the `TemporalReportedProblems` search attribute (`category=…`, `cause=…`). A goal
whose tasks wait with nobody working on them makes no progress either. Both are raised
as alerts that say what is wrong and what to do, and closed once they are gone.
"""

from dataclasses import dataclass
from datetime import timedelta

from goalkeeper.records import Finding

WEDGED = "workflow_wedged"
STALLED = "goal_stalled"
WATCH_ALERT_KINDS = (WEDGED, STALLED)
"""Alerts the watch opens and closes; the health check leaves them alone."""

GOALKEEPER_TYPES = (
    "GoalWorkflow",
    "TaskWorkflow",
    "PartitionWorkflow",
    "RequestWorkflow",
    "HealthCheckWorkflow",
)
"""Goalkeeper's workflows: a wedged one stops a goal, a request, or the health check. The
watch looks at every type on its task queue; others are named by their type."""

_MESSAGE_LIMIT = 300

_ADVICE = {
    "WorkflowTaskFailedCauseNonDeterministicError": (
        "the worker's code no longer replays this workflow's history: roll the worker back "
        "to the version that started it, or guard the change with workflow.patched and deploy "
        "again; the workflow resumes by itself once a worker can replay it"
    ),
    "WorkflowTaskFailedCausePayloadsTooLarge": (
        "a payload went over Temporal's 2 MiB limit: move the large value to the read model "
        "(store it, pass its id) or split it, then deploy the fix; the workflow resumes by itself"
    ),
    "WorkflowTaskFailedCauseGrpcMessageTooLarge": (
        "a workflow task's answer went over Temporal's 4 MiB message limit: send fewer or "
        "smaller commands per task, then deploy the fix; the workflow resumes by itself"
    ),
    "WorkflowTaskFailedCauseBadSearchAttributes": (
        "the workflow set search attributes the namespace does not have: restart a worker "
        "(it registers them) or register them with `temporal operator search-attribute create`"
    ),
}
_BUG = (
    "the workflow's code raised an error on every attempt: roll the worker back, or fix the "
    "bug named here and deploy; the workflow resumes by itself once its task succeeds"
)
_NO_KEY = (
    "a payload is encrypted with a codec key the worker does not have: give the workers the "
    "key named here (GOALKEEPER_CODEC_KEYS, after the current one) and restart them; the "
    "workflow resumes by itself"
)
_PLAINTEXT = (
    "a payload the worker's own workflow needs is not encrypted (a history written before "
    "encryption was turned on): set GOALKEEPER_CODEC_ACCEPT_PLAINTEXT=on on the workers until "
    "such workflows have ended; the workflow resumes by itself"
)
_UNKNOWN_TYPE = (
    "no worker on this task queue runs workflows of this type: deploy the worker that does "
    "(a deploy skew), or terminate the workflow if it was started by mistake (a typo)"
)
_TIMED_OUT = (
    "no worker finished this workflow's task in time: check that workers poll its task queue "
    "and are not overloaded or stuck (their logs name the workflow)"
)


@dataclass(frozen=True)
class Problem:
    """What Temporal reports about one running workflow, and what its worker last said."""

    workflow_id: str
    workflow_type: str
    category: str
    cause: str
    attempts: int = 0
    failure: str = ""


def reported(values: list[str] | None) -> tuple[str, str]:
    """(category, cause) from `TemporalReportedProblems`' `key=value` keywords."""
    pairs = dict(v.partition("=")[::2] for v in values or [])
    return pairs.get("category", "unknown"), pairs.get("cause", "unknown")


def goal_candidates(subject: str) -> list[str]:
    """The goals an alert's subject may be about, likeliest first: a goal's own id, or the
    goal in a task's (`GOAL/TASK`) or a partition's (`GOAL#partition-N`) workflow id.

    The first that is a goal in the read model is the one; a sub-goal's id has the form
    of a task's, which is why its own id comes first.
    """
    scope, _, name = subject.partition(":")
    if scope == "goal":
        return [name]
    if scope != "workflow":
        return []
    found = [name, name.rpartition("/")[0], name.partition("#partition-")[0]]
    return [g for i, g in enumerate(found) if g and g not in found[:i]]


def advice(category: str, cause: str, failure: str = "") -> str:
    """What a person should do about a workflow task failing for `cause` with `failure`."""
    if "GOALKEEPER_CODEC_ACCEPT_PLAINTEXT" in failure:
        return _PLAINTEXT
    if "UndecryptablePayload" in failure:
        return _NO_KEY
    if "is not registered on this worker" in failure:
        return _UNKNOWN_TYPE
    if cause in _ADVICE:
        return _ADVICE[cause]
    if category == "WorkflowTaskTimedOut":
        return _TIMED_OUT
    return _BUG


def wedged(problem: Problem) -> Finding:
    """The alert for a workflow whose workflow task keeps failing."""
    if problem.workflow_type in GOALKEEPER_TYPES:
        what = f"{problem.workflow_type.removesuffix('Workflow').lower()} workflow"
        what += f" {problem.workflow_id!r}"
    else:
        what = f"workflow {problem.workflow_id!r} of type {_clip(problem.workflow_type)!r}"
    tries = f" {problem.attempts} times" if problem.attempts > 1 else ""
    said = f": {_clip(problem.failure)}" if problem.failure else ""
    return Finding(
        kind=WEDGED,
        subject=f"workflow:{problem.workflow_id}",
        message=f"{what} is stuck: its workflow task failed"
        f"{tries} ({problem.cause.removeprefix('WorkflowTaskFailedCause')}){said}",
        action=advice(problem.category, problem.cause, problem.failure),
    )


@dataclass(frozen=True)
class Quiet:
    """A running goal as the read model shows it, for deciding whether it has stalled."""

    goal_id: str
    quiet_for: timedelta
    """Since the last change to any of its tasks (or the goal's start)."""
    ready: int
    """Pending tasks whose dependencies are all done: they wait on an agent."""
    working: int
    """Tasks assigned or awaiting approval."""
    ready_skills: tuple[str, ...]
    allowed: timedelta
    """The longest a task may take as its goal is set: report deadline plus approval timeout."""
    waiting_on: tuple[str, ...] = ()
    """Who its working tasks wait on: agents and approvers, for the message."""


def stalled(goal: Quiet, grace: timedelta) -> Finding | None:
    """The alert for a goal that should be moving and is not, naming what it waits on.

    Ready tasks with nobody assigned for longer than `grace` is the seeds' 0 % case; tasks
    that are worked on but silent past every deadline and approval timeout mean the
    workflows that enforce those limits are not running.
    """
    quiet = _duration(goal.quiet_for)
    if goal.ready and not goal.working and goal.quiet_for > grace:
        skills = ", ".join(goal.ready_skills) or "-"
        return Finding(
            kind=STALLED,
            subject=f"goal:{goal.goal_id}",
            message=f"goal {goal.goal_id!r} has {goal.ready} ready tasks and none assigned for "
            f"{quiet}: it waits on an agent for {skills}",
            action="register or start agents with these skills (`python agent.py --skill …`), "
            "and check the worker's log for assignment errors",
        )
    if goal.working and goal.quiet_for > goal.allowed + grace:
        on = ", ".join(goal.waiting_on) or "its agents"
        return Finding(
            kind=STALLED,
            subject=f"goal:{goal.goal_id}",
            message=f"goal {goal.goal_id!r} has had no task change for {quiet}, longer than its "
            f"deadlines allow ({_duration(goal.allowed)}); {goal.working} tasks wait on {on}",
            action="check that a worker is running (`starter.py health`, the worker's log); a "
            "task silent past its deadline should have gone to another agent",
        )
    return None


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_LIMIT else line[: _MESSAGE_LIMIT - 1] + "…"
