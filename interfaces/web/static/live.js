// Goalkeeper's dashboard: live regions and actions. No build step, nothing fetched from elsewhere.
"use strict";

// Older dashboards kept the token in localStorage, where any script could read it; the
// browser now keeps it in an HttpOnly cookie set at sign-in, so a left-over copy goes.
localStorage.removeItem("goalkeeper.token");

// Each region marked data-live is replaced by the same region of a fresh copy of the page,
// unless the person is typing in it: the server renders, the browser only swaps.
let refreshing = false;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    const response = await fetch(location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const next = fresh.getElementById(region.id);
      if (!next || next.innerHTML === region.innerHTML || busy(region)) continue;
      keepAnswers(region, next);
      region.replaceWith(next);
      wire(next);
    }
  } catch (error) {
    console.warn("refresh failed", error);
  } finally {
    refreshing = false;
    if (again) { again = false; setTimeout(refresh, 0); }
  }
}

// What an action answered stays shown when its region is swapped for a fresh copy.
function keepAnswers(region, next) {
  for (const out of region.querySelectorAll("form[data-post] .answer")) {
    if (!out.textContent) continue;
    const post = out.closest("form").dataset.post;
    const form = [...next.querySelectorAll("form[data-post]")].find((f) => f.dataset.post === post);
    const kept = form && form.querySelector(".answer");
    if (kept) { kept.className = out.className; kept.textContent = out.textContent; }
  }
}

function busy(region) {
  if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
  return [...region.querySelectorAll("textarea, input:not([type=hidden])")].some((f) => f.value);
}

// A goal page listens to its event stream and refreshes a moment after each event. The
// stream names each message by its kind; the page lists the kinds (data-kinds).
function listen(url, kinds) {
  let timer = null;
  const soon = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
  const source = new EventSource(url + "?after=" + lastSeq());
  for (const kind of kinds) source.addEventListener(kind, soon);
}

function lastSeq() {
  const seqs = [...document.querySelectorAll("[data-seq]")].map((e) => Number(e.dataset.seq));
  return seqs.length ? Math.max(...seqs) : 0;
}

// Actions post JSON to the API as the person signed in: the browser sends the cookie, and
// the page's own Origin, which is what lets the API take the cookie for an action.
async function act(form, submitter) {
  let out = form.querySelector(".answer");
  show(out, "", "");
  for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
  if (!document.body.dataset.person) {
    show(out, "error", "paste your API token at the top first ('starter.py token new --as NAME --workspace W')");
    return;
  }
  if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
  const body = {};
  for (const field of form.querySelectorAll("input, select, textarea")) {
    if (!field.name || field.value === "" || field.matches(":disabled")) continue;
    const numeric = field.type === "number" || field.dataset.type === "number";
    // "parameters.region" goes to body.parameters.region: one level of nesting is enough;
    // where the form sends one item of a list (data-one="tasks"), "tasks.id" goes to
    // body.tasks[0].id. A data-list field's commas make a list.
    const [name, inner] = field.name.split(".", 2);
    let value = numeric ? Number(field.value) : field.value;
    if (field.dataset.list !== undefined) value = value.split(",").map((v) => v.trim()).filter(Boolean);
    if (inner === undefined) body[name] = value;
    else if (form.dataset.one === name) ((body[name] = body[name] || [{}])[0])[inner] = value;
    else (body[name] = body[name] || {})[inner] = value;
  }
  if (submitter && submitter.name) body[submitter.name] = submitter.value;
  const url = (submitter && submitter.getAttribute("formaction")) || form.dataset.post;
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  show(out, "", "sending…");
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    // The page may have swapped the form's region for a fresh copy while it waited: the
    // answer goes to the form the person sees now.
    if (!form.isConnected) {
      const now = [...document.querySelectorAll("form[data-post]")].find((f) => f.dataset.post === form.dataset.post);
      if (now) { form = now; out = form.querySelector(".answer"); }
    }
    if (response.ok && form.dataset.open) {
      await opened(form, out, answer);
    } else if (response.ok) {
      show(out, "ok", "done");
      for (const field of form.querySelectorAll("textarea, input:not([type=hidden])")) field.value = "";
      setTimeout(refresh, 100);
    } else {
      show(out, "error", answer.detail || response.status + " " + response.statusText);
      markInvalid(form, answer.detail || "");
    }
  } catch (error) {
    show(out, "error", "the API did not answer: " + error);
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
}

// The fields a refusal names ("goal_id: ...", "needs ['owner']") are marked beside its words.
function markInvalid(form, detail) {
  for (const field of form.querySelectorAll("[name]")) {
    if (field.matches(":disabled")) continue;
    const key = field.name.split(".").pop();
    if (detail.includes(key + ":") || detail.includes("'" + key + "'")) field.setAttribute("aria-invalid", "true");
  }
}

// A form that starts work (data-open) shows what it started, then opens its page once the
// API can read it (data-ready): a goal is readable once its workflow has recorded it.
async function opened(form, out, answer) {
  const fill = (template) => template.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(answer[key] || ""));
  const page = fill(form.dataset.open);
  show(out, "ok", "started ");
  const link = document.createElement("a");
  link.href = page;
  link.textContent = answer.goal_id || answer.request_id || page;
  out.append(link, document.createTextNode("; opening its page…"));
  const ready = form.dataset.ready ? fill(form.dataset.ready) : null;
  for (let tries = 0; ready && tries < 120; tries++) {
    const seen = await fetch(ready, { credentials: "same-origin" }).catch(() => null);
    if (seen && seen.ok) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  location.assign(page);
}

function show(out, kind, text) {
  if (!out) { if (kind === "error") alert(text); return; }
  out.className = "answer " + kind;
  out.textContent = text;
}

// A select marked data-choose shows the fieldset of its choice (data-choice) and disables
// the others, so only the chosen runbook's parameters are sent.
function choose(select) {
  for (const set of select.form.querySelectorAll("fieldset[data-choice]")) {
    const off = set.dataset.choice !== select.value;
    set.disabled = off;
    set.hidden = off;
  }
}

function wire(root) {
  for (const select of root.querySelectorAll("select[data-choose]")) {
    select.addEventListener("change", () => choose(select));
    choose(select);
  }
  for (const form of root.querySelectorAll("form.action")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(form, event.submitter);
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wire(document);
  const every = Number(document.body.dataset.refresh || 0);
  if (every) setInterval(refresh, every);
  const events = document.body.dataset.events;
  if (events) listen(events, (document.body.dataset.kinds || "").split(" "));
});
