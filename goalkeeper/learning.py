"""Agents that learn: what an agent's record on a skill says, and who gets the next task.

An agent's record on a skill counts how its attempts ended (first-try completions,
completions, failures, lapses) and what people said of its work (reworks asked by
approvers, good and bad ratings). The choice among the agents that could take a task
is Thompson sampling: each candidate's chance of doing the task well is drawn from
Beta(successes + 1, failures + 1), and the highest draw wins. A proven agent wins most
draws, while a newcomer's wide prior lets it win some and prove itself.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

MIN_OBSERVATIONS_TO_COPY = 3
"""Observations an agent's record needs before a provisioned agent copies its config."""

SELECTION_MODES = ("learned", "least_loaded")
"""`learned`: Thompson sampling on records; `least_loaded`: the record is not looked at."""


@dataclass(frozen=True)
class AgentRecord:
    """How one agent's attempts at one skill ended, and what people said of them.

    `successes` = completions - reworks (at least 0) + good ratings; `failures_seen` =
    failures + lapses + reworks + bad ratings. A completion an approver sent back is
    not a success but a setback; a rating is one observation more either way.
    """

    first_tries: int = 0
    """Attempts that were a task's first."""
    first_try_completions: int = 0
    completions: int = 0
    failures: int = 0
    lapses: int = 0
    """Attempts that ended in a missed deadline or silence (`timed_out`)."""
    reworks: int = 0
    """Results an approver sent back."""
    ratings_good: int = 0
    """Ratings of 4 or 5."""
    ratings_bad: int = 0
    """Ratings of 1 or 2."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"expected {field.name} to be a count >= 0, got {value!r}")

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> "AgentRecord":
        """A record from a row of counts; a missing or NULL count is 0 (no record yet)."""
        return cls(**{f.name: counts.get(f.name) or 0 for f in fields(cls)})

    @property
    def successes(self) -> int:
        return max(0, self.completions - self.reworks) + self.ratings_good

    @property
    def failures_seen(self) -> int:
        return self.failures + self.lapses + self.reworks + self.ratings_bad

    @property
    def observations(self) -> int:
        return self.successes + self.failures_seen

    @property
    def posterior_mean(self) -> float:
        """The expected chance of success under Beta(successes + 1, failures_seen + 1)."""
        return (self.successes + 1) / (self.observations + 2)

    @property
    def first_try_rate(self) -> float | None:
        """First tries that completed, of all first tries; None before the first one."""
        return self.first_try_completions / self.first_tries if self.first_tries else None


@dataclass(frozen=True)
class Candidate:
    """An agent that could take the task now, with its record on the task's skill."""

    agent_id: str
    record: AgentRecord = AgentRecord()
    load: float = 0.0
    """Its share of capacity in use, from 0 (idle) to below 1."""


def choose_agent(candidates: Sequence[Candidate], rng: random.Random) -> str | None:
    """The candidate with the highest draw from its record's Beta posterior.

    None when there is nothing to choose by (no candidate, or none with a record): then
    the least loaded agent is as good a guess as any, and spreading work gives every
    agent its first record. Candidates are drawn for in agent-id order, so one seed
    gives one choice whatever order they came in.
    """
    if not any(c.record.observations for c in candidates):
        return None
    best: tuple[float, float, str] | None = None
    for candidate in sorted(candidates, key=lambda c: c.agent_id):
        record = candidate.record
        draw = rng.betavariate(record.successes + 1, record.failures_seen + 1)
        key = (draw, -candidate.load, candidate.agent_id)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    return best[2]


def selection_rng(seed: str, assignment_id: str) -> random.Random:
    """The random source of one assignment's choice: a retried activity draws the same."""
    return random.Random(f"{seed}:{assignment_id}")


def check_selection_mode(mode: str) -> str:
    """`mode` if it is a selection mode; otherwise a ValueError naming it."""
    if mode not in SELECTION_MODES:
        raise ValueError(
            "expected agent selection (GOALKEEPER_AGENT_SELECTION) "
            f"{' or '.join(map(repr, SELECTION_MODES))}, got {mode!r}"
        )
    return mode
