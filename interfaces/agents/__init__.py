"""Agents: the registry they announce themselves in, the runner, results by reference."""
