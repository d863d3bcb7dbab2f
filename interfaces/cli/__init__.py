"""The `starter.py` command line: one CLI for people and scripts."""
