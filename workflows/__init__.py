"""Workflows: a goal is a `GoalWorkflow`, each of its tasks a child `TaskWorkflow`."""
