// The console's only way out: requests to the proxy that served the page.
//   SQL       → POST /?default_format=JSONCompact (ClickHouse's HTTP interface, relayed by the proxy)
//   questions → POST /ask (Aurora's JSON API)
//   pipelines → /ui/api/ingest/... (the proxy forwards to aurora-ingest)
// Credentials travel in X-ClickHouse-User / X-ClickHouse-Key headers, never in a URL. They are kept in
// sessionStorage (this tab only, gone when it closes), never in localStorage.

const CREDENTIALS_KEY = "aurora.credentials";

/** An error the page shows: plain words first, ClickHouse's code and message after. */
export class ApiError extends Error {
  constructor(summary, { code = null, detail = "", status = 0, kind = "error", sql = null } = {}) {
    super(summary);
    this.summary = summary;
    this.code = code;
    this.detail = detail;
    this.status = status;
    this.kind = kind;
    this.sql = sql;
  }
}

export function credentials() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) || "null");
    return saved && typeof saved.user === "string" ? saved : null;
  } catch {
    return null;
  }
}

export function saveCredentials(user, password) {
  sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify({ user, password }));
}

export function forgetCredentials() {
  sessionStorage.removeItem(CREDENTIALS_KEY);
}

function authHeaders(creds = credentials()) {
  if (!creds) return {};
  // Header values must be ISO-8859-1; anything else is percent-encoded so that fetch does not throw.
  const safe = (s) => (/^[\x20-\x7e]*$/.test(s) ? s : encodeURIComponent(s));
  return { "X-ClickHouse-User": safe(creds.user), "X-ClickHouse-Key": safe(creds.password) };
}

/** Plain words for the ClickHouse error codes people meet most. */
const PLAIN = {
  47: "A column or name in the query is not known.",
  48: "This is not supported here.",
  60: "That table does not exist.",
  62: "The query has a syntax error.",
  81: "That database does not exist.",
  159: "The query took too long.",
  164: "This user may only read data.",
  192: "There is no such user.",
  193: "The password is wrong.",
  194: "This user needs a password.",
  195: "This user may not connect from here.",
  210: "ClickHouse cannot be reached.",
  241: "The query needs more memory than it may use.",
  497: "This user may not read that.",
  516: "The user name or password is wrong.",
};

export function plainWords(code, fallback) {
  return PLAIN[code] || fallback;
}

/** Reads a ClickHouse error answer (code header, then the text) into an ApiError. */
async function clickhouseError(response) {
  const text = (await response.text()).trim();
  let code = Number(response.headers.get("X-ClickHouse-Exception-Code")) || null;
  if (!code) {
    const m = /Code:\s*(\d+)/.exec(text);
    if (m) code = Number(m[1]);
  }
  const fallback = response.status === 502 ? "ClickHouse cannot be reached." : "ClickHouse refused the query.";
  return new ApiError(plainWords(code, fallback), { code, detail: text, status: response.status });
}

async function send(path, init) {
  try {
    return await fetch(path, { credentials: "omit", cache: "no-store", ...init });
  } catch (e) {
    throw new ApiError("The proxy cannot be reached.", { detail: String(e), kind: "network" });
  }
}

/**
 * Runs SQL through the HTTP interface. Returns {columns:[{name,type}], rows:[[..]], elapsedMs, serverMs, text}
 * (`text` when the answer is not JSON, e.g. the query named its own FORMAT).
 */
export async function runSql(sql, { params = {}, creds } = {}) {
  const query = new URLSearchParams({ default_format: "JSONCompact" });
  for (const [name, value] of Object.entries(params)) query.set(`param_${name}`, String(value));
  const started = performance.now();
  const response = await send(`/?${query}`, {
    method: "POST",
    headers: { ...authHeaders(creds), "Content-Type": "text/plain; charset=utf-8" },
    body: sql.trim().replace(/;\s*$/, ""),
  });
  if (!response.ok) throw await clickhouseError(response);
  const text = await response.text();
  const elapsedMs = performance.now() - started;
  if (!text.trim()) return { columns: [], rows: [], elapsedMs, serverMs: null };
  try {
    const json = JSON.parse(text);
    return {
      columns: json.meta || [],
      rows: json.data || [],
      elapsedMs,
      serverMs: json.statistics ? json.statistics.elapsed * 1000 : null,
    };
  } catch {
    return { columns: [], rows: [], elapsedMs, serverMs: null, text };
  }
}

// Aurora's own session for this page (follow-up questions refine the previous one; marks find their answer).
const ASK_SESSION = (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).slice(0, 64);

/** Asks Aurora a question (POST /ask). `explain`: only generate the SQL. `feedback`: "good" or "bad" marks
 * the answer given to the same question before (nothing else runs). */
export async function ask(question, { explain = false, feedback = null } = {}) {
  const started = performance.now();
  const response = await send("/ask", {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: JSON.stringify({ question, explain, session: ASK_SESSION, ...(feedback ? { feedback } : {}) }),
  });
  const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
  if (!isJson) {
    if (response.ok) throw new ApiError("The proxy's answer to the question was not understood.");
    if (response.status === 404 || response.status === 400 || response.status === 405) {
      throw new ApiError("This proxy does not answer questions (it has no /ask endpoint). Use SQL instead.", {
        status: response.status,
        kind: "no-ask",
      });
    }
    throw await clickhouseError(response);
  }
  const body = await response.json();
  if (!response.ok) {
    const err = body.error || {};
    // Aurora's own messages are written for people; ClickHouse's refusals of the user get plain words.
    const message = err.message || "The question could not be answered.";
    const summary = [159, 192, 193, 194, 210, 516].includes(err.code) ? plainWords(err.code, message) : message;
    throw new ApiError(summary, {
      code: err.code ?? null,
      detail: summary === message ? "" : message,
      status: response.status,
      sql: body.sql ?? null,
    });
  }
  body.elapsedMs = performance.now() - started;
  return body;
}

/** The ingest daemon's API through the proxy. Returns the parsed JSON answer. */
export async function ingest(method, path, body) {
  const init = { method, headers: { ...authHeaders() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(`/ui/api/ingest${path}`, init);
  let json = null;
  try {
    json = await response.json();
  } catch {
    /* not JSON: handled below */
  }
  if (!response.ok) {
    const err = (json && json.error) || {};
    const message = typeof err === "string" ? err : err.message || `HTTP ${response.status}`;
    const code = typeof err === "object" ? err.code ?? null : null;
    // A refusal by ClickHouse (credentials, a read-only user) in plain words; the daemon's own messages as they are.
    const summary = [164, 192, 193, 194, 516].includes(code) ? plainWords(code, message) : message;
    throw new ApiError(summary, { code, detail: message, status: response.status, kind: (json && json.ingest) || "error" });
  }
  return json;
}

/** The proxy's settings for the page (/ui/config.json). */
export async function consoleConfig() {
  const response = await send("/ui/config.json", {});
  if (!response.ok) return {};
  return response.json();
}
