"""`HealthCheckWorkflow`: one reconciliation of PostgreSQL with Temporal, run by a Schedule."""

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.health import HealthActivities
    from goalkeeper.records import HealthCheck, HealthReport
    from workflows.messages import parse_message


@workflow.defn
class HealthCheckWorkflow:
    """Runs the health check activity and shows what it found in the Temporal UI."""

    @workflow.run
    async def run(self, raw: Any = None) -> HealthReport:
        # Decoded here, not by the SDK, so bad input fails the run with the reason instead
        # of its every workflow task.
        request = parse_message((raw or {},), HealthCheck, "health check request")
        if isinstance(request, str):
            raise ApplicationError(request, type="InvalidHealthCheck", non_retryable=True)
        report = await workflow.execute_activity_method(
            HealthActivities.check_health,
            request,
            start_to_close_timeout=timedelta(minutes=5),
            # The next scheduled run will look again; a check must not pile up behind itself.
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2)),
            summary="reconcile PostgreSQL with Temporal",
        )
        repaired = sum(f.repaired for f in report.findings)
        lines = [
            f"**{len(report.findings)} findings, {repaired} repaired** "
            f"({report.goals_checked} running goals checked)"
        ]
        lines += [f"{f.kind} {f.subject}: {f.action or 'alerted'}" for f in report.findings[:20]]
        workflow.set_current_details("\n\n".join(lines))
        return report
