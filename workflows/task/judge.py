"""`TaskJudge`: whether what an agent or approver sends a task counts, and why not.

The rules are the core's (`goalkeeper.judging`, `goalkeeper.signing`); this shell knows
the keys they need, reads them when they are missing or may have changed, and reads the
heartbeats agents write to PostgreSQL, checked there.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import field_validator
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.assignment import AssignmentActivities
    from activities.checks import CheckActivities
    from activities.keys import KeyActivities
    from activities.read_model import ReadModelActivities
    from goalkeeper import signing
    from goalkeeper.judging import assignment_problem, decision_problem, report_problem
    from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, heartbeat_time_problem
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import AgentReport, ApprovalDecision, Heartbeat, TaskCheckpoint
    from goalkeeper.records import CheckResult, EventKind, ReadHeartbeat, StoredHeartbeat
    from monitoring import metrics
    from workflows.messages import parse_message
    from workflows.options import ACTIVITY_TIMEOUT, DATABASE_RETRY, record, record_apart
    from workflows.task.record import TaskRecord

KEYS_PER_DECISION = "approver-keys-per-decision"
"""The patch from which the approvers' keys are read again for each signed decision."""

CHECKED_HEARTBEATS = "checked-heartbeat-times"
"""Patch: heartbeats written to PostgreSQL are checked against its clock, by an activity."""

BOUNDED_TEXT = "bounded-agent-text"
"""Patch: reports and heartbeats over the text limits (goalkeeper.limits) are refused;
tasks that took such a message before it replay as they ran."""

AgentMessage = TypeVar("AgentMessage", AgentReport, Heartbeat)
"""What an agent sends about its assignment."""


class TaskJudge:
    """Judges a task's incoming reports, heartbeats and decisions against its assignment
    and the signatures it requires."""

    def __init__(self, record: TaskRecord, checkpoint: TaskCheckpoint | None = None) -> None:
        self._record = record
        self.signers = (checkpoint.signers if checkpoint else None) or signing.Signers()
        """Whose signatures count for the current assignment and approval, and if they must."""
        self.reported: set[str] = set(checkpoint.reported) if checkpoint else set()
        """Assignments whose report was taken: a second one never counts."""
        self.assigning: str | None = None
        """The assignment being made: its agent's messages wait until it is."""

    async def report(self, payload: tuple[Any, ...]) -> AgentReport | str:
        """The report, or why it is rejected."""
        return await self._judge(payload, AgentReport, "agent report", self._report_problem)

    async def heartbeat(self, payload: tuple[Any, ...]) -> Heartbeat | str:
        """The heartbeat, or why it is rejected."""
        return await self._judge(payload, Heartbeat, "heartbeat", self.heartbeat_problem)

    def prejudge_report(self, payload: tuple[Any, ...]) -> str | None:
        """Why an update's report is rejected at once, if it is."""
        return self._prejudge(payload, AgentReport, "agent report", self._report_problem)

    def prejudge_heartbeat(self, payload: tuple[Any, ...]) -> str | None:
        """Why an update's heartbeat is rejected at once, if it is."""
        return self._prejudge(payload, Heartbeat, "heartbeat", self.heartbeat_problem)

    async def _judge(
        self,
        payload: tuple[Any, ...],
        model: type[AgentMessage],
        what: str,
        problem: Callable[[AgentMessage], str | None],
    ) -> AgentMessage | str:
        """The message, or why it is rejected; judged once its assignment is known."""
        message = parse_message(payload, model, what)
        if isinstance(message, str):
            legacy = parse_message(payload, _LEGACY[model], what)
            if isinstance(legacy, str) or workflow.patched(BOUNDED_TEXT):
                return message
            message = model.model_construct(**legacy.model_dump())
        if message.assignment_id == self.assigning:
            # The agent heard of its assignment before the workflow did: wait for it.
            await workflow.wait_condition(lambda: self.assigning is None)
        if self.key_unknown(message.agent_id):
            await self.read_agent_key(message.agent_id)
        return problem(message) or message

    def _prejudge(
        self,
        payload: tuple[Any, ...],
        model: type[AgentMessage],
        what: str,
        problem: Callable[[AgentMessage], str | None],
    ) -> str | None:
        """An update validator's judgement: what `_judge` would say, unless it must wait."""
        message = parse_message(payload, model, what)
        if isinstance(message, str):
            return message
        if message.assignment_id == self.assigning or self.key_unknown(message.agent_id):
            return None  # the handler judges it once it knows the assignment, or the key
        return problem(message)

    def _report_problem(self, report: AgentReport) -> str | None:
        view = self._record.view
        return report_problem(view, report, self.reported, self._record.closed) or (
            signing.report_problem(self.signers, view.goal_id, view.task_id, report)
        )

    def heartbeat_problem(self, beat: Heartbeat) -> str | None:
        """Why a heartbeat cannot count: not the assignment's, badly timed, or unsigned."""
        view = self._record.view
        closed = self._record.closed
        return (
            assignment_problem(view, beat.agent_id, beat.assignment_id, "heartbeat", closed)
            or heartbeat_time_problem(beat.at, workflow.now(), "the workflow's clock")
            or signing.heartbeat_problem(self.signers, view.goal_id, view.task_id, beat)
        )

    def decision(
        self, payload: tuple[Any, ...], decided: bool, signed: bool = True
    ) -> ApprovalDecision | str:
        """The decision, or why it cannot count (one is already `decided`); `signed=False`
        leaves its signature to be judged once the approvers' keys are read again."""
        decision = parse_message(payload, ApprovalDecision, "approval decision")
        if isinstance(decision, str):
            return decision
        view = self._record.view
        signers = self.signers if signed else self.signers.model_copy(update={"required": False})
        return (
            decision_problem(view, decision, decided)
            or signing.decision_problem(signers, view, decision)
            or decision
        )

    def key_unknown(self, agent_id: str) -> bool:
        """Signatures count, and the agent holding the task had no key when assigned (a
        provisioned agent, which a runner that adopts it gives one)."""
        signers = self.signers
        return (
            signers.required
            and signers.agent_key is None
            and agent_id == self._record.view.agent_id
        )

    async def read_agent_key(self, agent_id: str) -> None:
        """Read the agent's key now: a regular activity, as handlers and the timer-driven
        heartbeat read both ask for it."""
        key = await record_apart(KeyActivities.agent_key, agent_id, f"read the key of {agent_id}")
        if key is not None and agent_id == self._record.view.agent_id:
            self.signers.agent_key = key

    async def load_approver_keys(self, apart: bool = False) -> None:
        """Read the keys of every approver who may be asked: before any may decide, and
        again for each decision (from its handler, `apart`)."""
        levels = self._record.input.approval_levels
        approvers = sorted({name for level in levels for name in level})
        read = record_apart if apart else record
        keys: signing.Signers = await read(
            KeyActivities.approver_keys, approvers, "read the approvers' keys"
        )
        self.signers.approver_keys = keys.approver_keys
        self.signers.delegate_keys = keys.delegate_keys

    async def stored_heartbeat(self, assignment_id: str) -> datetime | None:
        """When the agent last wrote its heartbeat to PostgreSQL; with signatures required,
        only a heartbeat its key signed, later than the last one, counts."""
        if workflow.patched(CHECKED_HEARTBEATS):
            return await self._checked_heartbeat(assignment_id)
        agent_id = self._record.view.agent_id
        if not self.signers.required:
            at: datetime | None = await workflow.execute_activity_method(
                AssignmentActivities.last_heartbeat,
                assignment_id,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=DATABASE_RETRY,
                summary=f"read the heartbeat of {agent_id}",
            )
            return at
        if self.key_unknown(agent_id or ""):
            await self.read_agent_key(agent_id or "")
        beat = await workflow.execute_activity_method(
            AssignmentActivities.read_heartbeat,
            assignment_id,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"read the signed heartbeat of {self._record.view.agent_id}",
        )
        if beat is None or beat.at is None or self.heartbeat_problem(beat) is not None:
            return None
        self.signers.last_beat_at = beat.at
        return datetime.fromisoformat(beat.at)

    async def _checked_heartbeat(self, assignment_id: str) -> datetime | None:
        """The stored heartbeat, its time checked against the database's clock by the
        activity that reads it; one that cannot count for its time is recorded, once per
        assignment, and the task goes on as if it had not been sent."""
        signed = self.signers.required
        if signed and self.key_unknown(self._record.view.agent_id or ""):
            await self.read_agent_key(self._record.view.agent_id or "")
        stored: StoredHeartbeat = await workflow.execute_activity_method(
            AssignmentActivities.stored_heartbeat,
            ReadHeartbeat(assignment_id=assignment_id, signed=signed),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=DATABASE_RETRY,
            summary=f"read the heartbeat of {self._record.view.agent_id}",
        )
        if stored.problem is not None:
            if self._record.first_rejection(f"stored:{assignment_id}"):
                metrics.rejected(workflow.metric_meter(), Rejected.HEARTBEAT)
                event = self._record.event(
                    EventKind.HEARTBEAT_REJECTED,
                    f"{stored.problem} (written to PostgreSQL)",
                    self._record.view.agent_id,
                )
                async with self._record.recording:
                    await record_apart(ReadModelActivities.record_event, event, "record heartbeat")
            return None
        if not signed:
            return stored.at
        if stored.beat is None or self.heartbeat_problem(stored.beat) is not None:
            return None  # unsigned, or the one already counted: silence goes on
        self.signers.last_beat_at = stored.beat.at
        return stored.at

    async def result_problem(self, report: AgentReport) -> str | None:
        """Why a completed report's result may not count: it refers to anything but a
        result stored for its own assignment, or is not what the task expects."""
        with workflow.unsafe.imports_passed_through():
            from goalkeeper.references import holds_reference
        input = self._record.input
        expects = input.task.expects
        # Tasks that expect nothing checked nothing before: their histories stay as they were.
        if expects is None and not (
            holds_reference(report.result) and workflow.patched("check-references")
        ):
            return None
        request_id = input.task.inputs.get("request_id")
        problem: str | None = await record(
            CheckActivities.check_result,
            CheckResult(
                expects=expects,
                result=report.result,
                assignment_id=report.assignment_id,
                request_id=request_id if isinstance(request_id, str) else None,
                goal_id=input.goal_id,
                goal_run_id=input.goal_run_id,
            ),
            f"check the {expects or 'referenced'} result",
        )
        # Bounded: it is kept in the task's history lines and its rework feedback.
        return None if problem is None else problem[:MAX_EVENT_MESSAGE_CHARS]


class _LegacyReport(AgentReport):
    """A report as taken before the text limits: replays of tasks that took one."""

    error: str | None = None


class _LegacyHeartbeat(Heartbeat):
    """A heartbeat as taken before its time was checked: replays of tasks that took one."""

    @field_validator("at")
    @classmethod
    def _a_time(cls, at: str | None) -> str | None:
        return at


_LEGACY: dict[type[Any], type[Any]] = {AgentReport: _LegacyReport, Heartbeat: _LegacyHeartbeat}
