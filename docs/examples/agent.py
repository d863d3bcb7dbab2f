"""A minimal Goalkeeper agent over the HTTP agent protocol, with Python's standard library.

GOALKEEPER_AGENT_CREDENTIAL=gka_... python agent.py http://localhost:8000
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

API = (sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8000") + "/api/v1/agent"
AUTH = {"Authorization": f"Bearer {os.environ['GOALKEEPER_AGENT_CREDENTIAL']}"}


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the API; a refusal raises HTTPError, its body problem+json."""
    data = None if body is None else json.dumps(body).encode()
    headers = AUTH | ({"Content-Type": "application/json"} if data else {})
    request = urllib.request.Request(API + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def work(assignment: dict[str, Any]) -> str:
    """The agent's own work: here, a line naming the task and what it was given."""
    task = assignment["context"]["task"]
    given = sorted(assignment["context"].get("dependency_results") or {})
    return f"{task['title']}: done by Python, given {given}"


def main() -> None:
    seen: list[str] = []  # those just reported, so the next poll does not return them again
    while True:
        query = "".join(f"&seen={s}" for s in seen)
        try:
            assignments = call("GET", f"/assignments?wait=30{query}")["assignments"]
        except urllib.error.HTTPError as refusal:
            print("poll refused:", refusal.read().decode(), file=sys.stderr, flush=True)
            time.sleep(5)
            continue
        seen = []
        for assignment in assignments:
            path = f"/assignments/{assignment['assignment_id']}"
            try:
                call("POST", f"{path}/report", {"outcome": "completed", "result": work(assignment)})
                print("reported completed", assignment["assignment_id"], flush=True)
            except urllib.error.HTTPError as refusal:
                print("report refused:", refusal.read().decode(), file=sys.stderr, flush=True)
            seen.append(assignment["assignment_id"])


if __name__ == "__main__":
    main()
