"""Runbooks: versioned, parameterised task templates, and goals expanded from them.

A runbook is kept as a TOML file (`runbooks/*.toml`) and stored in PostgreSQL; a goal
that names one (`"runbook": "campaign", "parameters": {...}`) gets its tasks from it.
Parsing, checking and expanding are pure, so the goal workflow, the activity that
stores large goals and the CLI all apply the same rules.
"""

import string
import tomllib
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from goalkeeper.errors import InvalidGoalSpec, InvalidRunbook
from goalkeeper.models import (
    GoalSpec,
    Guidance,
    Id,
    TaskSpec,
    Text,
    _Strict,
    describe_validation_error,
)

MAX_RUNBOOK_TASKS = 1000
MAX_RUNBOOK_BYTES = 128 * 1024
"""A runbook travels to the goal workflow whole (as JSON), so it stays small."""


class RunbookParameter(_Strict):
    """A value the goal gives when it uses the runbook, written `{name}` in its texts."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    description: str = ""
    default: str | None = None
    """The value when the goal gives none; without a default the parameter is required."""


class RunbookTask(_Strict):
    """One task of a runbook; its texts may use the runbook's parameters."""

    id: Id
    title: Text
    skill: Text
    description: Guidance = ""
    guidance: Guidance = ""
    """How an agent should do this task: it reaches the agent with its assignment."""
    depends_on: list[Id] = []
    requires_approval: bool = False
    approvers: list[Id] = []


class Runbook(_Strict):
    """A way of reaching a kind of goal, worth reusing: its tasks, parameters and guidance."""

    name: Id
    version: int = Field(ge=1)
    title: Text
    description: Guidance = ""
    tags: list[Text] = []
    guidance: Guidance = ""
    """How agents should work on any task of a goal from this runbook."""
    approvers: list[Id] = []
    """Approvers a goal from this runbook gets when it names none."""
    parameters: list[RunbookParameter] = []
    tasks: Annotated[list[RunbookTask], Field(min_length=1, max_length=MAX_RUNBOOK_TASKS)]

    def document(self) -> str:
        """The text that runbook matching searches: what it is for, and what it does."""
        return "\n".join(
            [self.title, self.description, " ".join(self.tags), self.guidance]
            + [f"{t.title} {t.skill} {t.description}" for t in self.tasks]
        )


def parse_runbook(text: str, source: str) -> Runbook:
    """Read a runbook from TOML and check it whole.

    Raises:
        InvalidRunbook: naming `source`, the bad field and what was expected.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRunbook(source, f"{source}: not valid TOML: {exc}") from None
    return check_runbook(raw, source)


def check_runbook(raw: Any, source: str) -> Runbook:
    """Validate a runbook given as a mapping (from TOML, JSON or the database)."""
    try:
        runbook = Runbook.model_validate(raw)
    except ValidationError as exc:
        problem = describe_validation_error(exc, "runbook")
        raise InvalidRunbook(source, f"{source}: {problem}") from None
    problems = _problems(runbook)
    size = len(runbook.model_dump_json())
    if size > MAX_RUNBOOK_BYTES:
        problems.append(f"expected at most {MAX_RUNBOOK_BYTES} bytes as JSON, got {size}")
    if problems:
        raise InvalidRunbook(source, f"{source}: invalid runbook: " + "; ".join(problems))
    return runbook


def _problems(runbook: Runbook) -> list[str]:
    problems = []
    names = [p.name for p in runbook.parameters]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"parameters: {name!r} is declared more than once")
    ids = [t.id for t in runbook.tasks]
    for task_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"tasks: duplicate task id {task_id!r}")
    texts = [("guidance", runbook.guidance)] + [
        (f"tasks[{i}].{field}", getattr(task, field))
        for i, task in enumerate(runbook.tasks)
        for field in ("title", "description", "guidance")
    ]
    for where, text in texts:
        for used in sorted(_placeholders(text, where, problems) - set(names)):
            problems.append(
                f"{where}: uses {{{used}}}, which is not a parameter; "
                f"expected one of {sorted(names)}"
            )
    for index, task in enumerate(runbook.tasks):
        for dependency in task.depends_on:
            if dependency not in ids or dependency == task.id:
                problems.append(
                    f"tasks[{index}].depends_on: {dependency!r} is not another task of "
                    f"the runbook; expected one of {sorted(set(ids) - {task.id})}"
                )
    return problems


def _placeholders(text: str, where: str, problems: list[str]) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        problems.append(f"{where}: {exc} (write {{{{ and }}}} for literal braces)")
        return set()


def apply_runbook(spec: GoalSpec, runbook: Runbook) -> GoalSpec:
    """The goal with its tasks expanded from the runbook it names, parameters filled in.

    Raises:
        InvalidGoalSpec: a parameter unknown to the runbook, a required one missing, or
            tasks given beside the runbook.
    """
    goal_id = spec.goal_id or ""
    if spec.tasks:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: tasks: the goal names runbook {runbook.name!r}, whose tasks "
            f"it gets; expected no tasks of its own, got {len(spec.tasks)}",
        )
    declared = {p.name: p for p in runbook.parameters}
    unknown = sorted(set(spec.parameters) - set(declared))
    if unknown:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: parameters: {unknown} are not parameters of runbook "
            f"{runbook.name!r} (version {runbook.version}); expected some of {sorted(declared)}",
        )
    given = {name: str(value) for name, value in spec.parameters.items()}
    values = {name: given.get(name, p.default) for name, p in declared.items()}
    missing = sorted(name for name, value in values.items() if value is None)
    if missing:
        raise InvalidGoalSpec(
            goal_id,
            f"invalid goal spec: parameters: runbook {runbook.name!r} needs {missing}, "
            "which have no default; got none",
        )
    try:
        tasks = [
            TaskSpec(
                id=t.id,
                title=t.title.format_map(values),
                skill=t.skill,
                description=t.description.format_map(values),
                guidance=t.guidance.format_map(values),
                depends_on=list(t.depends_on),
                requires_approval=t.requires_approval,
                approvers=list(t.approvers),
            )
            for t in runbook.tasks
        ]
    except ValidationError as exc:  # a parameter's value made a text too long
        raise InvalidGoalSpec(
            goal_id,
            describe_validation_error(exc, f"task of runbook {runbook.name!r} with its parameters"),
        ) from None
    return spec.model_copy(
        update={
            "tasks": tasks,
            "parameters": values,
            "runbook_version": runbook.version,
            "guidance": spec.guidance or runbook.guidance.format_map(values),
            "approvers": spec.approvers or list(runbook.approvers),
        }
    )


def runbook_named(raw: Any) -> tuple[str, int | None] | None:
    """The runbook (name, version or None for the latest) a raw goal spec names, if any."""
    if not isinstance(raw, dict) or not isinstance(raw.get("runbook"), str):
        return None
    version = raw.get("runbook_version")
    return raw["runbook"], version if isinstance(version, int) else None


RATING_PRIOR = 2
"""Ratings of a neutral 3 that every runbook's average starts from, so one rating moves it
only part of the way."""


class RunbookRecord(BaseModel):
    """How the goals that used a runbook went: their outcomes, and how people rated them."""

    runs: int = 0
    """Goals that used the runbook (rejected ones aside)."""
    completed: int = 0
    failed: int = 0
    ratings: int = 0
    """Ratings (1 to 5) given on those goals or their tasks."""
    rating_sum: int = 0

    @property
    def success_rate(self) -> float:
        """(completed + 1) / (completed + failed + 2): a runbook never used has 0.5."""
        return (self.completed + 1) / (self.completed + self.failed + 2)

    @property
    def average_rating(self) -> float | None:
        """The plain average of its ratings; None when it has none."""
        return self.rating_sum / self.ratings if self.ratings else None

    @property
    def rating_factor(self) -> float:
        """From 0.5 (always rated 1) to 1.5 (always rated 5); 1 when unrated.

        The average is taken with `RATING_PRIOR` neutral ratings of 3 beside the real
        ones, so a runbook's first rating moves its score only part of the way.
        """
        smoothed = (self.rating_sum + 3 * RATING_PRIOR) / (self.ratings + RATING_PRIOR)
        return 0.5 + (smoothed - 1) / 4


class RunbookMatch(BaseModel):
    """A runbook found for a goal's text, with the parts of its score, so a person sees why."""

    name: str
    version: int
    title: str
    score: float
    text_rank: float
    """How well the runbook's text matches, from 0 to 1 (PostgreSQL full-text rank)."""
    runs: int
    """Goals that used the runbook (rejected ones aside)."""
    completed: int
    failed: int
    success_rate: float
    """(completed + 1) / (completed + failed + 2): a runbook never used scores 0.5."""
    ratings: int = 0
    """Ratings (1 to 5) people gave those goals or their tasks."""
    average_rating: float | None = None
    rating_factor: float = 1.0
    """From 0.5 to 1.5, 1 when unrated: see `RunbookRecord.rating_factor`."""
    description: str = ""
    parameters: list[RunbookParameter] = []
    """What a goal from it must or may give."""


def score_match(
    *,
    name: str,
    version: int,
    title: str,
    text_rank: float,
    runs: int,
    completed: int,
    failed: int,
    ratings: int = 0,
    rating_sum: int = 0,
    description: str = "",
    parameters: list[RunbookParameter] | None = None,
) -> RunbookMatch:
    """Weigh text against history: of two runbooks whose text matches as well, one whose
    goals all completed scores up to three times one whose goals all failed, and one
    whose goals were rated 5 up to three times one rated 1; history alone never makes a
    runbook match."""
    record = RunbookRecord(
        runs=runs, completed=completed, failed=failed, ratings=ratings, rating_sum=rating_sum
    )
    average = record.average_rating
    return RunbookMatch(
        name=name,
        version=version,
        title=title,
        score=round(text_rank * (0.5 + record.success_rate) * record.rating_factor, 6),
        text_rank=round(text_rank, 6),
        runs=runs,
        completed=completed,
        failed=failed,
        success_rate=round(record.success_rate, 6),
        ratings=ratings,
        average_rating=None if average is None else round(average, 6),
        rating_factor=round(record.rating_factor, 6),
        description=description,
        parameters=parameters or [],
    )
