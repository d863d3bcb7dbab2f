"""`RequestWorkflow`: a person's question, triaged by an agent into an answer or a goal."""

import asyncio
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    import workflows.sealing as sealing
    from activities.requests import RequestActivities
    from activities.runbooks import RunbookActivities
    from goalkeeper.ids import fact_id
    from goalkeeper.limits import MAX_EVENT_MESSAGE_CHARS, MAX_SHOWN_QUESTION_CHARS
    from goalkeeper.metrics import Rejected
    from goalkeeper.models import Abort, GoalReport, describe_validation_error
    from goalkeeper.records import (
        Event,
        EventKind,
        MatchRunbooks,
        RecordRequest,
        TriageOutcome,
        UpdateRequest,
    )
    from goalkeeper.requests import (
        RequestSpec,
        RequestView,
        request_goal_id,
        triage_goal_id,
        triage_goal_spec,
    )
    from goalkeeper.runbooks import RunbookMatch
    from goalkeeper.statuses import GoalStatus, RequestStatus
    from monitoring import metrics
    from workflows.goal.workflow import GoalWorkflow
    from workflows.messages import Undecodable, summarize_payload
    from workflows.options import record

MAX_REQUEST_ID = 100
"""Request ids leave room for the `.triage` and `.goal` of the goals they start."""

CANCELABLE = "request-cancel"
"""The patch from which a request asked to cancel (Temporal's cancellation, which only
the API sends, for the caller whose request it is) ends canceled: the goal it runs is
aborted and no goal starts after its triage. Histories before it replay as they ran."""


@workflow.defn
class RequestWorkflow:
    """Asks a triage agent whether a question needs a goal; answers it, or runs the goal.

    The triage is a goal of one task (`{request_id}.triage`, skill `triage`), so it gets
    an agent, deadlines and retries like any task; its result must be an answer or a
    valid goal spec, checked before it counts. A goal starts as `{request_id}.goal`,
    by reference, and the request ends when it does. Canceled (Temporal's cancellation),
    it aborts the goal running for it and ends `canceled`, starting no goal after triage.
    """

    @workflow.init
    def __init__(self, raw: Any = None) -> None:
        info = workflow.info()
        self._run_id = info.first_execution_run_id
        self._canceled = False
        self._child: str | None = None
        """The goal (triage, then the work) running for the request now."""
        self._aborts: list[asyncio.Future[None]] = []
        self._view = RequestView(
            request_id=info.workflow_id,
            question="",
            workspace="default",
            status=RequestStatus.TRIAGING,
        )

    @workflow.run
    async def run(self, raw: Any = None) -> RequestView:
        if not workflow.patched(CANCELABLE):
            return await self._run(raw)
        # Shielded: a cancellation is taken as a request to end, never breaks off a step.
        work = asyncio.ensure_future(self._run(raw))
        while True:
            try:
                return await asyncio.shield(work)
            except asyncio.CancelledError:
                self._cancel()

    def _cancel(self) -> None:
        """End the request canceled: abort the goal running for it, and start no other."""
        if not self._canceled:
            self._canceled = True
            self._abort_child()

    def _abort_child(self) -> None:
        to = self._child
        if to is None or not self._canceled:
            return
        self._child = None
        abort = Abort(reason=f"request {self._view.request_id!r} canceled")
        self._aborts.append(asyncio.ensure_future(self._signal_abort(to, abort)))

    async def _signal_abort(self, to: str, abort: Abort) -> None:
        try:
            await workflow.get_external_workflow_handle(to).signal(
                "abort", sealing.sealed("abort", to, abort)
            )
        except Exception as exc:  # it has ended already: the request ends as it reports
            workflow.logger.warning(f"could not abort {to!r}: {exc}")

    async def _run(self, raw: Any) -> RequestView:
        request = await self._validate(raw)
        view = self._view
        view.question, view.workspace = request.question, request.workspace
        candidates: list[RunbookMatch] = await record(
            RunbookActivities.match_runbooks,
            MatchRunbooks(text=request.question),
            "find runbooks for the question",
        )
        names = ", ".join(c.name for c in candidates) or "none"
        await record(
            RequestActivities.record_request,
            RecordRequest(
                request_id=view.request_id,
                run_id=self._run_id,
                spec=request,
                event=self._event(
                    EventKind.REQUEST_STARTED,
                    f"request {view.request_id!r} asked; runbook candidates: {names}",
                ),
            ),
            "record the request",
        )
        self._show("triaging")
        if self._canceled:
            return await self._end_canceled("before its triage")
        triage = await self._run_goal(
            triage_goal_spec(view.request_id, request, candidates),
            triage_goal_id(view.request_id),
            ParentClosePolicy.TERMINATE,
        )
        if self._canceled:
            return await self._end_canceled("while triaged")
        if isinstance(triage, str):
            return await self._end(RequestStatus.FAILED, error=f"triage failed: {triage}")
        outcome: TriageOutcome = await record(
            RequestActivities.load_triage, view.request_id, "read the triage"
        )
        view.kind, view.reason = "answer" if outcome.kind == "answer" else "goal", outcome.reason
        if outcome.kind == "answer":
            view.answer = outcome.answer
            return await self._end(RequestStatus.ANSWERED)
        if self._canceled:
            return await self._end_canceled("while triaged")
        view.goal_id = request_goal_id(view.request_id)
        await self._update(
            RequestStatus.GOAL_RUNNING,
            EventKind.REQUEST_TRIAGED,
            f"request {view.request_id!r} needs a goal: started {view.goal_id!r} "
            f"({outcome.title}); why: {outcome.reason or 'not given'}",
        )
        self._show(f"goal {view.goal_id} running")
        goal = await self._run_goal(
            {"spec_ref": outcome.spec_ref}, view.goal_id, ParentClosePolicy.ABANDON
        )
        if self._canceled and (isinstance(goal, str) or goal.status is not GoalStatus.COMPLETED):
            return await self._end_canceled(f"while its goal ran: goal {view.goal_id!r} aborted")
        if isinstance(goal, str):
            return await self._end(RequestStatus.FAILED, error=f"goal failed: {goal}")
        view.goal_status = goal.status.value
        completed = goal.status is GoalStatus.COMPLETED
        return await self._end(
            RequestStatus.COMPLETED if completed else RequestStatus.FAILED,
            error=None if completed else f"goal {view.goal_id!r} {goal.status.value}",
        )

    @workflow.query
    def status(self) -> RequestView:
        """The request now: triaging, answered, or the goal it became and how it stands."""
        return self._view

    async def _validate(self, raw: Any) -> RequestSpec:
        request_id = self._view.request_id
        if isinstance(raw, Undecodable):
            await self._reject(f"invalid request: {raw}", str(raw))
        try:
            if len(request_id) > MAX_REQUEST_ID:
                raise ValueError(
                    f"request id {request_id!r}: expected at most {MAX_REQUEST_ID} characters, "
                    f"got {len(request_id)}"
                )
            return RequestSpec.model_validate(raw)
        except ValidationError as exc:
            await self._reject(describe_validation_error(exc, "request"), raw)
        except ValueError as exc:
            await self._reject(f"invalid request: {exc}", raw)

    async def _reject(self, error: str, raw: Any) -> NoReturn:
        self._view.status, self._view.error = RequestStatus.REJECTED, error
        metrics.rejected(workflow.metric_meter(), Rejected.REQUEST_INPUT)
        await record(
            RequestActivities.record_request,
            RecordRequest(
                request_id=self._view.request_id,
                run_id=self._run_id,
                raw=summarize_payload((raw,), 4000),
                error=error[:MAX_EVENT_MESSAGE_CHARS],
                event=self._event(EventKind.REQUEST_REJECTED, error[:MAX_EVENT_MESSAGE_CHARS]),
            ),
            "record the rejected request",
        )
        raise ApplicationError(error, type="InvalidRequest", non_retryable=True)

    async def _run_goal(
        self, spec: dict[str, Any], goal_id: str, policy: ParentClosePolicy
    ) -> GoalReport | str:
        """Run a goal as a child to its end: its report, or why it could not run."""
        try:
            child = await workflow.start_child_workflow(
                GoalWorkflow.run,
                spec,
                id=goal_id,
                parent_close_policy=policy,
                static_summary=f"for request {self._view.request_id}",
            )
            self._child = goal_id
            self._abort_child()  # canceled as it started
            try:
                report: GoalReport = await child
            finally:
                self._child = None
        except ChildWorkflowError as exc:
            cause = exc.cause
            return str(cause.message if isinstance(cause, ApplicationError) else cause or exc)
        except WorkflowAlreadyStartedError:
            return (
                f"goal {goal_id!r} is already running (started for an earlier request of "
                "this id); expected a request id of its own"
            )
        if report.status is GoalStatus.FAILED and goal_id == triage_goal_id(self._view.request_id):
            errors = [t.error for t in report.tasks if t.error]
            return errors[0] if errors else report.error or "the triage task failed"
        return report

    async def _end_canceled(self, when: str) -> RequestView:
        return await self._end(RequestStatus.CANCELED, error=f"canceled by its caller {when}")

    async def _end(self, status: RequestStatus, error: str | None = None) -> RequestView:
        view = self._view
        view.error = error
        what = {
            RequestStatus.ANSWERED: f"answered directly; why: {view.reason or 'not given'}",
            RequestStatus.COMPLETED: f"completed: goal {view.goal_id!r} completed",
            RequestStatus.CANCELED: f"canceled: {error}",
        }.get(status, f"failed: {error}")
        await self._update(status, EventKind.REQUEST_ENDED, f"request {view.request_id!r} {what}")
        self._show(status.value)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return view

    async def _update(self, status: RequestStatus, kind: EventKind, message: str) -> None:
        view = self._view
        view.status = status
        await record(
            RequestActivities.update_request,
            UpdateRequest(
                request_id=view.request_id,
                run_id=self._run_id,
                status=status,
                kind=view.kind,
                answer=view.answer,
                goal_id=view.goal_id,
                reason=view.reason,
                error=view.error,
                event=self._event(kind, message[:MAX_EVENT_MESSAGE_CHARS]),
            ),
            f"record the request {status.value}",
        )

    def _event(self, kind: EventKind, message: str) -> Event:
        return Event(
            event_id=fact_id("request", self._run_id, kind),
            kind=kind,
            message=message,
            goal_id=self._view.request_id,
            detail={"kind": self._view.kind, "goal_id": self._view.goal_id},
        )

    def _show(self, stage: str) -> None:
        view = self._view
        workflow.set_current_details(
            f"**{stage}**: {view.question[:MAX_SHOWN_QUESTION_CHARS]}"
            + (f"\n\ngoal: `{view.goal_id}`" if view.goal_id else "")
            + (f"\n\nwhy: {view.reason}" if view.reason else "")
        )
