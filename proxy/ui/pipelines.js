// The pipelines page: aurora-ingest's pipelines (through the proxy at /ui/api/ingest), refreshed every
// REFRESH_MS while the page is shown; a form to connect a topic to a table; disconnect with confirmation.

import { ApiError, ingest } from "./api.js";

const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);

let timer = null;
let active = false;
let lastNames = [];

const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

function fmt(value) {
  return value === null || value === undefined ? "–" : number.format(value);
}

function notice(error) {
  const box = $("ingest-notice");
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  let head;
  if (error.kind === "not_configured") {
    head = "No ingest daemon is configured for this proxy. Start aurora-proxy with --ingest-api-url pointing at aurora-ingest's API.";
  } else if (error.kind === "unreachable" || error.kind === "network") {
    head = "The ingest daemon is unreachable: pipelines cannot be listed or changed until it runs again. Retrying every few seconds.";
  } else {
    head = `The pipelines could not be read: ${error.summary}`;
  }
  const p = document.createElement("p");
  p.className = "notice-head";
  p.textContent = head;
  const detail = document.createElement("p");
  detail.className = "hint";
  detail.textContent = error.summary;
  box.replaceChildren(p, detail);
  box.hidden = false;
}

function render(pipelines) {
  const wrap = $("pipelines-table");
  if (!pipelines.length) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = "No pipelines run. Connect a topic to a table below.";
    wrap.replaceChildren(p);
    lastNames = [];
    return;
  }
  const table = document.createElement("table");
  table.className = "data pipelines";
  const head = table.createTHead().insertRow();
  for (const title of ["Name", "State", "Topics → table", "Rows/s", "Lag", "Rows inserted", "Dead letters", "Last error", ""]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = title;
    if (["Rows/s", "Lag", "Rows inserted", "Dead letters"].includes(title)) th.className = "num";
    head.append(th);
  }
  const body = table.createTBody();
  for (const p of pipelines) {
    const tr = body.insertRow();
    tr.dataset.pipeline = p.name;
    const cell = (text, cls) => {
      const td = tr.insertCell();
      td.textContent = text;
      if (cls) td.className = cls;
      return td;
    };
    cell(p.name, "name");
    const state = cell("", "");
    const badge = document.createElement("span");
    badge.className = `badge state-${p.state}`;
    badge.textContent = p.state;
    state.append(badge);
    cell(`${(p.topics || []).join(", ")} → ${p.table}`, "route");
    cell(fmt(p.rows_per_sec), "num rate");
    cell(fmt(p.lag), "num lag");
    cell(fmt(p.rows_inserted), "num inserted");
    cell(fmt(p.dead_letters), "num");
    cell(p.last_error || "–", p.last_error ? "last-error" : "hint");
    const actions = tr.insertCell();
    const button = document.createElement("button");
    button.type = "button";
    button.className = "danger small";
    button.textContent = "Disconnect";
    button.setAttribute("aria-label", `Disconnect ${p.name}`);
    button.addEventListener("click", () => confirmDisconnect(p.name));
    actions.append(button);
  }
  // Keeps keyboard focus on the same pipeline's button across refreshes.
  const focused = document.activeElement && document.activeElement.closest("tr[data-pipeline]");
  const focusName = focused ? focused.dataset.pipeline : null;
  wrap.replaceChildren(table);
  if (focusName) {
    const again = wrap.querySelector(`tr[data-pipeline="${CSS.escape(focusName)}"] button`);
    if (again) again.focus();
  }
  lastNames = pipelines.map((p) => p.name);
}

async function refresh() {
  if (!active) return;
  try {
    const answer = await ingest("GET", "/pipelines");
    notice(null);
    render((answer && answer.pipelines) || []);
    $("pipelines-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    notice(error instanceof ApiError ? error : new ApiError(String(error)));
    if (!$("pipelines-table").firstChild) {
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = "Pipelines appear here when the ingest daemon answers.";
      $("pipelines-table").replaceChildren(p);
    }
  } finally {
    if (active) timer = setTimeout(refresh, REFRESH_MS);
  }
}

function confirmDisconnect(name) {
  const dialog = $("disconnect-dialog");
  $("disconnect-text").textContent = `“${name}” stops reading after it has written and committed what it already read. You can connect it again later.`;
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "confirm") return;
    const result = $("connect-result");
    result.textContent = `Disconnecting ${name}…`;
    try {
      await ingest("DELETE", `/pipelines/${encodeURIComponent(name)}`);
      result.textContent = `Disconnected ${name}.`;
    } catch (error) {
      result.textContent = "";
      showConnectError(`Could not disconnect ${name}: ${error.summary || error.message}`);
    }
    clearTimeout(timer);
    refresh();
  };
  dialog.showModal();
}

function showConnectError(text) {
  const box = $("connect-error");
  box.textContent = text;
  box.hidden = !text;
}

async function connect(event) {
  event.preventDefault();
  showConnectError("");
  const name = $("connect-name").value.trim();
  const topics = $("connect-topics").value.split(",").map((t) => t.trim()).filter(Boolean);
  const table = $("connect-table").value.trim();
  const missing = [];
  if (!name) missing.push("a pipeline name");
  if (!topics.length) missing.push("at least one topic");
  if (!/^[^.\s]+\.[^.\s]+$/.test(table)) missing.push("a table as database.table");
  if (missing.length) {
    showConnectError(`Give ${missing.join(", ")}.`);
    return;
  }
  let spec = { name, topics, table };
  const extra = $("connect-extra").value.trim();
  if (extra) {
    try {
      const parsed = JSON.parse(extra);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      spec = { ...parsed, ...spec };
    } catch (e) {
      showConnectError(`Other settings must be a JSON object: ${e.message}`);
      return;
    }
  }
  const result = $("connect-result");
  result.textContent = `Connecting ${name}…`;
  try {
    await ingest("POST", "/pipelines", spec);
    result.textContent = `Connected ${name}: ${topics.join(", ")} → ${table}.`;
    event.target.reset();
  } catch (error) {
    result.textContent = "";
    const why = error.status === 409 ? `A pipeline named ${name} exists already.` : error.summary || error.message;
    showConnectError(`Could not connect: ${why}`);
  }
  clearTimeout(timer);
  refresh();
}

export function initPipelinesPage() {
  $("connect-form").addEventListener("submit", connect);
}

export function showPipelines(on) {
  active = on;
  clearTimeout(timer);
  if (on) refresh();
}

export function pipelineNames() {
  return lastNames;
}
