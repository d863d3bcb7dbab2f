#!/usr/bin/env bash
# A minimal Goalkeeper agent over the HTTP agent protocol, in curl and jq.
#   GOALKEEPER_AGENT_CREDENTIAL=gka_... ./agent.sh http://localhost:8000
set -euo pipefail
API="${1:-http://localhost:8000}/api/v1/agent"
AUTH="Authorization: Bearer ${GOALKEEPER_AGENT_CREDENTIAL:?set to a credential from starter.py agent credential new}"
seen=""  # the assignments just reported, so the next poll does not return them again

while true; do
  # Long poll: answers at once with new assignments, else after 30 s with none.
  if ! body=$(curl -sS --fail-with-body -H "$AUTH" "$API/assignments?wait=30$seen"); then
    echo "poll refused: $body" >&2
    sleep 5
    continue
  fi
  seen=""
  while read -r work; do
    [ -n "$work" ] || continue
    id=$(jq -r .assignment_id <<<"$work")
    title=$(jq -r .context.task.title <<<"$work")
    # The work itself: here, a line saying what was done.
    report=$(jq -n --arg result "$title: done by curl" '{outcome: "completed", result: $result}')
    if answer=$(curl -sS --fail-with-body -H "$AUTH" -H 'Content-Type: application/json' \
      -X POST "$API/assignments/$id/report" --data-binary "$report"); then
      echo "reported completed $id"
    else
      echo "report refused: $answer" >&2
    fi
    seen="$seen&seen=$id"
  done < <(jq -c '.assignments[]' <<<"$body")
done
