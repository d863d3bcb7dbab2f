"""What people and agents run: the CLI and demo, the agent runner, the embedded stack."""
