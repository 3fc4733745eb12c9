// Entry point: login, the page switcher (#query, #pipelines, #visualize) and the Visualize page.

import { ApiError, consoleConfig, credentials, forgetCredentials, runSql, saveCredentials } from "./api.js";
import { initPipelinesPage, showPipelines } from "./pipelines.js";
import { initQueryPage } from "./query.js";

const $ = (id) => document.getElementById(id);
const PAGES = ["query", "pipelines", "visualize"];

/** Dashboards provisioned from grafana/dashboards/ (uid → what it shows). */
const DASHBOARDS = [
  { uid: "aurora-events", title: "Events analytics", text: "Event rates, tenants and revenue from analytics.events, queried through aurora-proxy." },
  { uid: "aurora-ingest", title: "Ingest", text: "Pipelines: rows per second, consumer lag per partition, dead letters, insert latency, retries." },
  { uid: "aurora-proxy", title: "Proxy", text: "Connections, statements by kind and outcome, latency, bytes, upstream health and ASK." },
];

let config = {};

function currentPage() {
  const page = location.hash.replace(/^#/, "");
  return PAGES.includes(page) ? page : "query";
}

function show(page) {
  const loggedIn = credentials() !== null;
  $("login").hidden = loggedIn;
  $("nav").hidden = !loggedIn;
  $("who-box").hidden = !loggedIn;
  for (const p of PAGES) $(`page-${p}`).hidden = !loggedIn || p !== page;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  showPipelines(loggedIn && page === "pipelines");
  if (loggedIn && page === "visualize") renderVisualize();
  document.title = loggedIn ? `${page[0].toUpperCase()}${page.slice(1)} · Aurora console` : "Log in · Aurora console";
}

async function login(event) {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  const box = $("login-error");
  box.hidden = true;
  if (!user) {
    box.textContent = "Type a user name.";
    box.hidden = false;
    return;
  }
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const answer = await runSql("SELECT version()", { creds: { user, password } });
    saveCredentials(user, password);
    $("login-password").value = "";
    setWho([user, (answer.rows[0] || [""])[0]]);
    show(currentPage());
    $("main").focus();
  } catch (error) {
    const e = error instanceof ApiError ? error : new ApiError(String(error));
    box.replaceChildren();
    const head = document.createElement("p");
    head.className = "error-head";
    head.textContent = `Login failed: ${e.summary}`;
    box.append(head);
    if (e.code) {
      const code = document.createElement("p");
      code.className = "error-code";
      code.textContent = `ClickHouse error code ${e.code}`;
      box.append(code);
    }
    box.hidden = false;
    $("login-password").focus();
  } finally {
    button.disabled = false;
  }
}

function setWho([user, version]) {
  $("who").textContent = version ? `${user} · ClickHouse ${version}` : user;
}

function renderVisualize() {
  const box = $("grafana");
  box.replaceChildren();
  const base = config.grafana_url;
  if (!base) {
    const p = document.createElement("p");
    p.textContent = "No Grafana is configured for this proxy. Start aurora-proxy with --grafana-url to link its dashboards here.";
    box.append(p);
    return;
  }
  const intro = document.createElement("p");
  intro.textContent = `Dashboards in Grafana at ${base} (they open in a new tab).`;
  const list = document.createElement("ul");
  list.className = "dashboards";
  for (const d of DASHBOARDS) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = `${base}/d/${d.uid}`;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = d.title;
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = d.text;
    li.append(a, p);
    list.append(li);
  }
  const all = document.createElement("a");
  all.href = `${base}/dashboards?tag=aurora`;
  all.target = "_blank";
  all.rel = "noopener noreferrer";
  all.textContent = "All Aurora dashboards";
  box.append(intro, list, all);
}

async function start() {
  initQueryPage();
  initPipelinesPage();
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    forgetCredentials();
    $("who").textContent = "";
    show(currentPage());
    $("login-user").focus();
  });
  window.addEventListener("hashchange", () => show(currentPage()));
  show(currentPage());
  config = await consoleConfig().catch(() => ({}));
  const creds = credentials();
  if (creds) {
    setWho([creds.user, ""]);
    // The tab was reloaded: fill in the server version, or log out if the credentials no longer work.
    runSql("SELECT version()").then(
      (answer) => setWho([creds.user, (answer.rows[0] || [""])[0]]),
      (error) => {
        if (error.code && [192, 193, 194, 516].includes(error.code)) {
          forgetCredentials();
          show(currentPage());
        }
      },
    );
  }
  if (currentPage() === "visualize") renderVisualize();
  document.body.classList.add("ready");
}

start();
