"""The HTTP API: read-only views of goals, tasks, agents, approvals, costs and health."""
