"""Goalkeeper: a goal-driven orchestration engine for teams of AI agents, on Temporal."""
