"""Goal specs from files (JSON or TOML) or from command-line flags, with errors that point."""

import json
import tomllib
from pathlib import Path
from typing import Any

from interfaces.cli.session import EXIT_USAGE, CliError


def load_spec_file(path: Path) -> dict[str, Any]:
    """Read a goal spec; a syntax error names the file, line and column."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read spec file {path}: {exc.strerror}", EXIT_USAGE) from exc
    try:
        if path.suffix.lower() == ".toml":
            spec: Any = tomllib.loads(text)
        else:
            spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            EXIT_USAGE,
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"{path}: invalid TOML: {exc}", EXIT_USAGE) from exc
    if not isinstance(spec, dict):
        raise CliError(f"{path}: expected a JSON object, got {type(spec).__name__}", EXIT_USAGE)
    return spec


def spec_from_flags(
    title: str,
    description: str,
    workspace: str,
    approvers: list[str],
    tasks: list[str],
) -> dict[str, Any]:
    """A spec from `--task SKILL:TITLE[:approval]` flags, in order."""
    parsed = []
    for flag in tasks:
        skill, _, rest = flag.partition(":")
        task_title, _, option = (
            rest.rpartition(":") if rest.endswith(":approval") else (rest, "", "")
        )
        if not skill.strip() or not task_title.strip():
            raise CliError(
                f"--task expects SKILL:TITLE or SKILL:TITLE:approval, got {flag!r}", EXIT_USAGE
            )
        parsed.append(
            {
                "title": task_title.strip(),
                "skill": skill.strip(),
                "requires_approval": option == "approval",
            }
        )
    return {
        "title": title,
        "description": description,
        "workspace": workspace,
        "approvers": approvers,
        "tasks": parsed,
    }
