"""The one shape in which every CLI module adds its commands to `starter.py`'s parser."""

import argparse
from collections.abc import Callable
from typing import Protocol, TypeAlias

from interfaces.cli.session import Session

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""A group of commands: the top level, or the actions of one (`goal start`, `goal list`)."""

Run: TypeAlias = Callable[[Session, argparse.Namespace], object]
"""What a command runs: a coroutine function (or, for `up`, a plain one)."""


class Command(Protocol):
    """Adds a command to a group, with the options every command has, and what it runs."""

    def __call__(
        self, group: Commands, name: str, help: str, run: Run
    ) -> argparse.ArgumentParser: ...


class CommandModule(Protocol):
    """A module of `interfaces/cli/` that implements commands and builds their parsers."""

    def add_commands(self, commands: Commands, command: Command) -> None: ...
