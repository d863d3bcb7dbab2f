// A minimal Goalkeeper agent over the HTTP agent protocol, in TypeScript with fetch (Node 20+).
//   GOALKEEPER_AGENT_CREDENTIAL=gka_... npx tsx agent.ts http://localhost:8000

type Assignment = {
  assignment_id: string;
  goal_id: string;
  task_id: string;
  context: { task: { title: string }; dependency_results?: Record<string, unknown> };
};

const API: string = (process.argv[2] ?? "http://localhost:8000") + "/api/v1/agent";
const AUTH: Record<string, string> = {
  Authorization: `Bearer ${process.env.GOALKEEPER_AGENT_CREDENTIAL}`,
};

// One request to the API; a refusal throws with its problem+json body.
async function call(method: string, path: string, body?: object): Promise<any> {
  const headers: Record<string, string> = { ...AUTH };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer: Response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!answer.ok) throw new Error(`${answer.status} ${await answer.text()}`);
  return answer.json();
}

// The agent's own work: here, a line naming the task.
function work(assignment: Assignment): string {
  return `${assignment.context.task.title}: done by TypeScript`;
}

async function main(): Promise<void> {
  let seen: string[] = []; // those just reported, so the next poll does not return them again
  for (;;) {
    const query: string = seen.map((id) => `&seen=${id}`).join("");
    let assignments: Assignment[];
    try {
      assignments = (await call("GET", `/assignments?wait=30${query}`)).assignments;
    } catch (refusal) {
      console.error("poll refused:", String(refusal));
      await new Promise((resolve) => setTimeout(resolve, 5000));
      continue;
    }
    seen = [];
    for (const assignment of assignments) {
      const report = { outcome: "completed", result: work(assignment) };
      try {
        await call("POST", `/assignments/${assignment.assignment_id}/report`, report);
        console.log("reported completed", assignment.assignment_id);
      } catch (refusal) {
        console.error("report refused:", String(refusal));
      }
      seen.push(assignment.assignment_id);
    }
  }
}

main();
