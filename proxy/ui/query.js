// The query page: a question (POST /ask) or SQL (the HTTP interface), the generated SQL with its parameters
// and explanation, the result as a sortable table and a chart, and a history of recent entries.

import { ApiError, ask, runSql } from "./api.js";
import { chartShape, drawChart } from "./chart.js";
import { renderTable, MAX_ROWS_SHOWN } from "./table.js";

const HISTORY_KEY = "aurora.history";
const HISTORY_MAX = 20;
const $ = (id) => document.getElementById(id);

let current = { columns: [], rows: [], shape: chartShape([], []) };
let generated = null; // the last /ask answer: {sql, params, question}
let sqlParams = {}; // parameters that go with SQL opened from a generated query

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function setMode(value) {
  document.querySelector(`input[name="mode"][value="${value}"]`).checked = true;
  syncMode();
}

function syncMode() {
  const isAsk = mode() === "ask";
  $("query-label").textContent = isAsk ? "Ask a question about your data" : "SQL query (ClickHouse)";
  $("query-text").placeholder = isAsk
    ? "How many signups did acme have last week?"
    : "SELECT event_type, count() FROM analytics.events GROUP BY event_type";
  $("explain-box").hidden = !isAsk;
}

function status(text) {
  $("status").textContent = text;
}

function showError(error) {
  const box = $("query-error");
  box.replaceChildren();
  const head = document.createElement("p");
  head.className = "error-head";
  head.textContent = error.summary || error.message;
  box.append(head);
  if (error.code) {
    const code = document.createElement("p");
    code.className = "error-code";
    code.textContent = `ClickHouse error code ${error.code}`;
    box.append(code);
  }
  if (error.detail) {
    const detail = document.createElement("pre");
    detail.className = "error-detail";
    detail.textContent = error.detail;
    box.append(detail);
  }
  box.hidden = false;
}

function clearError() {
  $("query-error").hidden = true;
  $("query-error").replaceChildren();
}

function fmtMs(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function showResult(columns, rows, elapsedMs, note = "") {
  current = { columns, rows, shape: chartShape(columns, rows) };
  const n = rows.length;
  let summary = columns.length
    ? `${n.toLocaleString()} ${n === 1 ? "row" : "rows"} · ${fmtMs(elapsedMs)}`
    : `Done · ${fmtMs(elapsedMs)} (no rows returned)`;
  if (n > MAX_ROWS_SHOWN) summary += ` · showing the first ${MAX_ROWS_SHOWN.toLocaleString()}`;
  $("result-summary").textContent = summary + note;
  renderTable($("table"), columns, rows);
  const select = $("chart-kind");
  select.disabled = current.shape.kind === "none";
  select.value = current.shape.kind;
  redrawChart();
}

function clearResult() {
  current = { columns: [], rows: [], shape: chartShape([], []) };
  $("result-summary").textContent = "No result: see the error above.";
  $("table").replaceChildren();
  $("chart").replaceChildren();
  $("chart").hidden = true;
  $("chart-kind").value = "none";
  $("chart-kind").disabled = true;
}

function redrawChart() {
  const figure = $("chart");
  const drawn = drawChart(figure, current.columns, current.rows, $("chart-kind").value, current.shape);
  figure.hidden = !drawn;
}

function showGenerated(answer, { runnable, rejected = false }) {
  generated = answer;
  $("generated").hidden = false;
  $("generated-title").textContent = rejected ? "Generated SQL (not run)" : "Generated SQL";
  $("generated-sql").textContent = answer.sql || "";
  $("explanation").textContent = answer.explanation || "";
  $("explanation").hidden = !answer.explanation;
  const tables = Array.isArray(answer.tables) ? answer.tables : [];
  $("tables-used").textContent = tables.length ? `Tables: ${tables.join(", ")}` : "";
  $("tables-used").hidden = !tables.length;
  const dl = $("params");
  dl.replaceChildren();
  const params = answer.params || {};
  for (const [name, value] of Object.entries(params)) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "string" ? value : JSON.stringify(value);
    dl.append(dt, dd);
  }
  dl.hidden = !Object.keys(params).length;
  $("run-generated").hidden = !runnable;
  // An answer that ran can be marked: right ones teach later questions, wrong ones are never reused.
  const markable = !runnable && !rejected && Boolean(answer.question);
  $("feedback").hidden = !markable;
  $("feedback-label").textContent = "Is this answer right?";
  $("mark-good").disabled = $("mark-bad").disabled = false;
}

async function markAnswer(verdict) {
  if (!generated || !generated.question) return;
  const question = generated.question;
  $("mark-good").disabled = $("mark-bad").disabled = true;
  try {
    await ask(question, { feedback: verdict });
    $("feedback-label").textContent =
      verdict === "good"
        ? "Marked right: later questions like it learn from this answer."
        : "Marked wrong: this answer will not be reused; ask again for a new one.";
  } catch (error) {
    $("mark-good").disabled = $("mark-bad").disabled = false;
    showError(error instanceof ApiError ? error : new ApiError("The mark could not be sent.", { detail: String(error) }));
  }
}

function hideGenerated() {
  generated = null;
  $("generated").hidden = true;
}

// --- history (localStorage: questions and SQL only, never credentials) ------------------------------------

function history() {
  try {
    const list = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function remember(kind, text) {
  const list = history().filter((h) => !(h.kind === kind && h.text === text));
  list.unshift({ kind, text, at: Date.now() });
  localStorage.setItem(HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX)));
  renderHistory();
}

function renderHistory() {
  const ol = $("history");
  ol.replaceChildren();
  const list = history();
  if (!list.length) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = "Questions and queries you run appear here.";
    ol.append(li);
  }
  for (const item of list) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "history-item";
    const tag = document.createElement("span");
    tag.className = `tag ${item.kind}`;
    tag.textContent = item.kind === "ask" ? "Q" : "SQL";
    const text = document.createElement("span");
    text.textContent = item.text;
    button.append(tag, text);
    button.addEventListener("click", () => {
      setMode(item.kind);
      $("query-text").value = item.text;
      sqlParams = {};
      $("query-text").focus();
    });
    li.append(button);
    ol.append(li);
  }
}

// --- running --------------------------------------------------------------------------------------------

let busy = false;

async function guarded(work) {
  if (busy) return;
  busy = true;
  $("run").disabled = true;
  $("result").setAttribute("aria-busy", "true");
  clearError();
  try {
    await work();
  } catch (error) {
    clearResult();
    if (error instanceof ApiError) {
      showError(error);
      if (error.sql) showGenerated({ sql: error.sql, params: {} }, { runnable: false, rejected: true });
    } else {
      showError(new ApiError("Something went wrong in the page.", { detail: String(error) }));
    }
    status("");
  } finally {
    busy = false;
    $("run").disabled = false;
    $("result").removeAttribute("aria-busy");
  }
}

async function runQuestion(question, explainFirst) {
  remember("ask", question);
  hideGenerated();
  status(explainFirst ? "Writing the SQL…" : "Asking…");
  const answer = await ask(question, { explain: explainFirst });
  answer.question = question;
  if (explainFirst) {
    showGenerated(answer, { runnable: true });
    status("Here is the SQL for your question. Run it, or open it as SQL to change it.");
    return;
  }
  showGenerated(answer, { runnable: false });
  showResult(answer.columns || [], answer.rows || [], answer.elapsed_ms ?? answer.elapsedMs, answer.cached ? " · from cache" : "");
  status("");
}

async function runSqlText(sql) {
  remember("sql", sql);
  status("Running…");
  // Parameters of an opened generated query go along while the SQL still uses them ({name:Type}).
  const params = Object.fromEntries(Object.entries(sqlParams).filter(([name]) => sql.includes(`{${name}:`)));
  const result = await runSql(sql, { params });
  if (result.text !== undefined) {
    showResult([{ name: "answer", type: "String" }], result.text.split("\n").filter(Boolean).map((l) => [l]), result.elapsedMs);
  } else {
    showResult(result.columns, result.rows, result.elapsedMs);
  }
  status("");
}

export function initQueryPage() {
  syncMode();
  renderHistory();
  for (const radio of document.querySelectorAll('input[name="mode"]')) radio.addEventListener("change", syncMode);
  $("query-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("query-text").value.trim();
    if (!text) {
      showError(new ApiError(mode() === "ask" ? "Type a question first." : "Type a query first."));
      $("query-text").focus();
      return;
    }
    if (mode() === "ask") guarded(() => runQuestion(text, $("explain").checked));
    else {
      hideGenerated();
      guarded(() => runSqlText(text));
    }
  });
  $("query-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("query-form").requestSubmit();
    }
  });
  $("chart-kind").addEventListener("change", redrawChart);
  let width = window.innerWidth;
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (window.innerWidth !== width && current.rows.length) redrawChart();
      width = window.innerWidth;
    }, 150);
  });
  $("run-generated").addEventListener("click", () => {
    if (!generated) return;
    const question = generated.question;
    guarded(() => runQuestion(question, false));
  });
  $("open-sql").addEventListener("click", () => {
    if (!generated) return;
    setMode("sql");
    if (generated.executed_sql) {
      // The query as it ran, values bound: runs on any ClickHouse, also those without query parameters.
      $("query-text").value = generated.executed_sql;
      sqlParams = {};
      status("The SQL that ran is in the editor, with the parameter values written in.");
    } else {
      const params = generated.params || {};
      $("query-text").value = generated.sql || "";
      sqlParams = params; // sent as param_<name> with the query
      status(Object.keys(params).length ? "The SQL is in the editor; its parameters are sent with it." : "The SQL is in the editor.");
    }
    $("query-text").focus();
  });
  $("mark-good").addEventListener("click", () => markAnswer("good"));
  $("mark-bad").addEventListener("click", () => markAnswer("bad"));
  $("history-clear").addEventListener("click", () => {
    localStorage.removeItem(HISTORY_KEY);
    renderHistory();
  });
}
