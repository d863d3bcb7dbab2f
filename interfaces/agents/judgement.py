"""Simulated judgement for the demo and tests: triage, planning and compiling; offline.

Real deployments give these skills to an LLM agent (see the `pydantic-ai` hook) or to
a person; these stand-ins follow simple rules, so a run can be predicted from its seed.
"""

import random
from typing import Any

RUNBOOK_MIN_RANK = 0.1
"""Below this text rank a runbook candidate is a coincidence of words, not a fit."""

SIMPLE_WORDS = 12
"""A question this short, ending in '?', gets a direct answer."""


def best_runbook(candidates: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    """The best candidate that fits, its required parameters given `text`, and why."""
    fitting = [c for c in candidates if c.get("text_rank", 0) >= RUNBOOK_MIN_RANK]
    if not fitting:
        return None
    best = fitting[0]
    required = [p["name"] for p in best.get("parameters", []) if p.get("default") is None]
    return {
        "runbook": best["name"],
        "parameters": {name: text[:500] for name in required},
        "reason": f"runbook {best['name']!r} fits it best (score {best.get('score', 0):.3f})",
    }


def simulated_triage(question: str, candidates: list[dict[str, Any]], rng: random.Random) -> Any:
    """An answer for a short question; else a goal from the best runbook, or of its own."""
    words = question.split()
    if len(words) <= SIMPLE_WORDS and question.rstrip().endswith("?"):
        return {
            "kind": "answer",
            "answer": f"A short answer to {question!r} (simulated, seed draw {rng.random():.3f}).",
            "reason": f"a question of {len(words)} words that one answer settles",
        }
    title = " ".join(words[:20])[:200]
    best = best_runbook(candidates, question)
    if best is not None:
        why = best.pop("reason")
        return {
            "kind": "goal",
            "goal": {"title": title, "description": question, **best},
            "reason": f"it needs several steps, and {why}",
        }
    return {
        "kind": "goal",
        "goal": {
            "title": title,
            "description": question,
            "tasks": [
                {"id": "research", "title": f"Research: {title}", "skill": "research"},
                {
                    "id": "write-up",
                    "title": f"Write up: {title}",
                    "skill": "writing",
                    "depends_on": ["research"],
                },
            ],
        },
        "reason": "it needs several steps and no runbook fits it",
    }


def simulated_plan(goal: dict[str, Any], inputs: dict[str, Any]) -> Any:
    """A plan from the best-fitting runbook candidate, else research, a draft and a check;
    a re-plan (after a judge's reasons) adds a revision."""
    description = str(goal.get("description") or goal.get("title") or "the goal")
    if inputs.get("judge_reasons") is not None:
        round = inputs.get("round", 1)
        return {
            "tasks": [
                {
                    "id": f"revise-{round}",
                    "title": f"Revise: {inputs['judge_reasons']}"[:200],
                    "skill": "writing",
                }
            ],
            "reason": f"the judge said: {inputs['judge_reasons']}",
        }
    best = best_runbook(inputs.get("runbook_candidates") or [], description)
    if best is not None:
        return best
    subject = " ".join(description.split()[:12])
    return {
        "tasks": [
            {"id": "research", "title": f"Research: {subject}", "skill": "research"},
            {
                "id": "draft",
                "title": f"Draft: {subject}",
                "skill": "writing",
                "depends_on": ["research"],
            },
            {
                "id": "check",
                "title": f"Check the draft: {subject}",
                "skill": "research",
                "depends_on": ["draft"],
            },
        ],
        "reason": "no runbook fits: research, then a draft, then a check",
    }


def simulated_compile(goal: dict[str, Any], results: dict[str, Any]) -> Any:
    """A deliverable of every result under the goal's title, judged met."""
    sections = [f"## {task_id}\n\n{result}" for task_id, result in results.items()]
    return {
        "deliverable": "\n\n".join([f"# {goal.get('title', 'Deliverable')}", *sections]),
        "met": True,
        "reasons": f"all {len(results)} results are in the deliverable",
    }
