// Drives aurora-proxy's console in headless Chromium (Debian's /usr/bin/chromium) with playwright-core.
// Called by tests/ui/test_console.py, one scenario per run:
//
//   node tests/ui/drive.mjs <scenario>
//
// Environment: AURORA_UI_URL (the proxy's HTTP base URL), AURORA_UI_USER / AURORA_UI_PASSWORD,
// AURORA_UI_SHOTS (folder for screenshots), and per scenario the values named below.
// Each scenario asserts what a user sees; it prints `RESULT {json}` on success and exits 1 with the reason
// otherwise.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const BASE = process.env.AURORA_UI_URL;
const USER = process.env.AURORA_UI_USER || "default";
const PASSWORD = process.env.AURORA_UI_PASSWORD || "";
const SHOTS = process.env.AURORA_UI_SHOTS || "tests/ui/screenshots";
const CHROMIUM = process.env.AURORA_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 15000;

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

class Failure extends Error {}
function check(condition, message) {
  if (!condition) throw new Failure(message);
}

async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function login(page, user = USER, password = PASSWORD) {
  await page.goto(`${BASE}/ui/`);
  await page.getByLabel("User").fill(user);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
}

async function loggedIn(page) {
  await login(page);
  await page.locator("#nav").waitFor({ state: "visible", timeout: TIMEOUT });
}

async function runSqlOnPage(page, sql) {
  await page.getByRole("radio", { name: "SQL" }).check();
  await page.locator("#query-text").fill(sql);
  await page.getByRole("button", { name: "Run", exact: true }).click();
}

/** Waits until the result summary names a row count (other than `previous`, the summary of the last run,
 * which stays on the page until the new answer arrives) and returns it. */
async function rowCount(page, previous = null) {
  const summary = page.locator("#result-summary");
  await page.waitForFunction(
    (before) => {
      const text = document.getElementById("result-summary").textContent;
      return /\d+ rows?|no rows/.test(text) && text !== before;
    },
    previous,
    { timeout: TIMEOUT },
  );
  const text = await summary.textContent();
  const m = /([\d,.\s]+) rows?/.exec(text);
  return { text, rows: m ? Number(m[1].replace(/[^\d]/g, "")) : 0 };
}

const scenarios = {
  /** The login page, a login, SQL with a time series (line) and one with categories (bar), sorting, history. */
  async login_sql(page) {
    const timeSql = process.env.AURORA_UI_TIME_SQL;
    const barSql = process.env.AURORA_UI_BAR_SQL;
    const expectTime = Number(process.env.AURORA_UI_TIME_ROWS);
    const expectBars = Number(process.env.AURORA_UI_BAR_ROWS);
    await page.goto(`${BASE}/ui/`);
    await page.getByRole("heading", { name: "Log in" }).waitFor({ timeout: TIMEOUT });
    await shot(page, "login");
    await loggedIn(page);
    check(await page.locator("#who").textContent().then((t) => t.includes(USER)), "the header names the user");

    await runSqlOnPage(page, timeSql);
    const first = await rowCount(page);
    check(first.rows === expectTime, `time series: expected ${expectTime} rows, the page says "${first.text}"`);
    check(/\d+ ms|\d+\.\d+ s/.test(first.text), `the summary shows the elapsed time: "${first.text}"`);
    const tableRows = await page.locator("#table tbody tr").count();
    check(tableRows === expectTime, `the table has ${tableRows} rows, expected ${expectTime}`);
    check((await page.locator("#chart-kind").inputValue()) === "line", "a time series is drawn as a line");
    await page.locator("#chart svg path.series").first().waitFor({ state: "attached", timeout: TIMEOUT });
    const label = await page.locator("#chart svg").getAttribute("aria-label");
    check(label && label.startsWith("Line chart"), `the chart has an accessible name: ${label}`);
    await shot(page, "query-line");

    // Sorting: the count column descending, by keyboard.
    const header = page.locator("#table th button").nth(1);
    await header.focus();
    await page.keyboard.press("Enter");
    await page.keyboard.press("Enter");
    const sorted = await page.locator("#table tbody tr td:nth-child(2)").allTextContents();
    const numbers = sorted.map(Number);
    check(numbers.every((v, i) => i === 0 || numbers[i - 1] >= v), `descending after two presses: ${numbers}`);
    check((await page.locator("#table th").nth(1).getAttribute("aria-sort")) === "descending", "aria-sort says so");

    // Switching the chart kind.
    await page.getByLabel("Chart", { exact: true }).selectOption("bar");
    await page.locator("#chart svg rect.bar").first().waitFor({ state: "attached", timeout: TIMEOUT });

    await runSqlOnPage(page, barSql);
    const second = await rowCount(page, first.text);
    check(second.rows === expectBars, `categories: expected ${expectBars} rows, the page says "${second.text}"`);
    check((await page.locator("#chart-kind").inputValue()) === "bar", "category + number is drawn as bars");
    const bars = await page.locator("#chart svg rect.bar").count();
    check(bars === expectBars, `${bars} bars drawn, expected ${expectBars}`);
    await shot(page, "query-bar");

    // History keeps the queries; credentials are in sessionStorage only, never in localStorage or the URL.
    const history = await page.locator("#history .history-item").allTextContents();
    check(history.some((h) => h.includes(barSql.slice(0, 20))), `history lists the query: ${history}`);
    const stored = await page.evaluate(() => JSON.stringify(localStorage));
    check(!PASSWORD || !stored.includes(PASSWORD), "the password is not in localStorage");
    check(!PASSWORD || !page.url().includes(PASSWORD), "the password is not in the URL");

    // An error in plain words with the ClickHouse code.
    await runSqlOnPage(page, "SELECT * FROM no_such_database_x.no_such_table");
    const error = page.locator("#query-error");
    await error.waitFor({ state: "visible", timeout: TIMEOUT });
    const errorText = await error.textContent();
    check(/does not exist/.test(errorText) && /ClickHouse error code 81/.test(errorText), `error shown: ${errorText}`);
    await shot(page, "query-error");

    // Phone width: nothing wider than the screen.
    await page.setViewportSize({ width: 375, height: 740 });
    await runSqlOnPage(page, timeSql);
    await rowCount(page);
    await shot(page, "query-phone");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page is ${overflow}px wider than a phone screen`);
    return { time_rows: first.rows, bar_rows: second.rows, summary: first.text };
  },

  /** A wrong password is refused with a clear message and the ClickHouse code. */
  async wrong_password(page) {
    await login(page, USER, `${PASSWORD}-wrong`);
    const box = page.locator("#login-error");
    await box.waitFor({ state: "visible", timeout: TIMEOUT });
    const text = await box.textContent();
    check(/Login failed: (The password is wrong|The user name or password is wrong)/.test(text), `message: ${text}`);
    check(/ClickHouse error code (193|516)/.test(text), `code shown: ${text}`);
    check(await page.locator("#nav").isHidden(), "the pages stay hidden");
    await shot(page, "login-wrong-password");
    return { message: text };
  },

  /** With no daemon at ingest_api_url the pipelines page says so. */
  async pipelines_unreachable(page) {
    await loggedIn(page);
    await page.getByRole("link", { name: "Pipelines" }).click();
    const notice = page.locator("#ingest-notice");
    await notice.waitFor({ state: "visible", timeout: TIMEOUT });
    const text = await notice.textContent();
    check(/The ingest daemon is unreachable/.test(text), `notice: ${text}`);
    check(/cannot reach the ingest daemon at/.test(text), `the reason is shown: ${text}`);
    await shot(page, "pipelines-unreachable");
    return { notice: text };
  },

  /** The Visualize page links Grafana's dashboards under grafana_url. */
  async visualize(page) {
    const grafana = process.env.AURORA_UI_GRAFANA_URL;
    await loggedIn(page);
    await page.getByRole("link", { name: "Visualize" }).click();
    const link = page.getByRole("link", { name: "Events analytics" });
    await link.waitFor({ timeout: TIMEOUT });
    const href = await link.getAttribute("href");
    check(href === `${grafana}/d/aurora-events`, `link: ${href}`);
    await shot(page, "visualize");
    return { href };
  },

  /**
   * Load time of the console: three first visits, each in a fresh browser context (empty cache), after the tab
   * has opened the proxy's /ping (so the tab's own start-up is not counted), then one revisit (revalidation).
   */
  async load_time(page, context) {
    const measure = async (p) => {
      const started = Date.now();
      await p.goto(`${BASE}/ui/`, { waitUntil: "load" });
      await p.waitForFunction(() => document.body.classList.contains("ready"), null, { timeout: TIMEOUT });
      const wall = Date.now() - started;
      const nav = await p.evaluate(() => {
        const n = performance.getEntriesByType("navigation")[0];
        const bytes = performance
          .getEntriesByType("resource")
          .concat([n])
          .reduce((sum, r) => sum + (r.transferSize || 0), 0);
        return { load: n.loadEventEnd, dcl: n.domContentLoadedEventEnd, bytes };
      });
      return { wall_ms: wall, load_event_ms: Math.round(nav.load), dom_ready_ms: Math.round(nav.dcl), transfer_bytes: nav.bytes };
    };
    const cold = [];
    for (let i = 0; i < 3; i++) {
      const fresh = await context.browser().newContext({ viewport: { width: 1280, height: 860 } });
      const p = await fresh.newPage();
      await p.goto(`${BASE}/ping`);
      cold.push(await measure(p));
      if (i === 2) {
        cold.push(await measure(p));
        await shot(p, "load");
      }
      await fresh.close();
    }
    const warm = cold.pop();
    const median = [...cold].sort((a, b) => a.load_event_ms - b.load_event_ms)[1];
    void page;
    return { cold, median, warm };
  },

  /** Ask a question (explain first, then run), see SQL, rows and a chart; a rejected question; open as SQL. */
  async ask(page) {
    const question = process.env.AURORA_UI_QUESTION;
    const rejected = process.env.AURORA_UI_REJECTED_QUESTION;
    const expectRows = Number(process.env.AURORA_UI_ASK_ROWS);
    await loggedIn(page);
    await page.getByRole("radio", { name: "Question" }).check();
    await page.locator("#query-text").fill(question);
    await page.getByLabel("Show the SQL before running").check();
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await page.locator("#generated").waitFor({ state: "visible", timeout: TIMEOUT });
    const sql = await page.locator("#generated-sql").textContent();
    check(/SELECT/i.test(sql), `generated SQL shown: ${sql}`);
    await shot(page, "ask-explain");
    await page.getByRole("button", { name: "Run it" }).click();
    const result = await rowCount(page);
    check(result.rows === expectRows, `expected ${expectRows} rows, the page says "${result.text}"`);
    check(await page.locator("#chart").isVisible(), "a chart is drawn");
    await shot(page, "ask-result");
    // The answer can be marked right: the buttons go, the page says what the mark does.
    await page.getByRole("button", { name: "Right", exact: true }).click();
    const label = page.locator("#feedback-label");
    await page.waitForFunction(() => /Marked right/.test(document.getElementById("feedback-label").textContent), null, { timeout: TIMEOUT });
    const marked = await label.textContent();
    check(await page.getByRole("button", { name: "Right", exact: true }).isDisabled(), "a marked answer's buttons are off");

    await page.getByRole("button", { name: "Open as SQL" }).click();
    check((await page.getByRole("radio", { name: "SQL" }).isChecked()), "the editor switched to SQL");
    const opened = await page.locator("#query-text").inputValue();
    check(/SELECT/i.test(opened), `the SQL is in the editor: ${opened}`);
    await page.getByRole("button", { name: "Run", exact: true }).click();
    const again = await rowCount(page);
    check(again.rows === expectRows, `the opened SQL gives the same rows: ${again.text}`);

    await page.getByRole("radio", { name: "Question" }).check();
    await page.locator("#query-text").fill(rejected);
    await page.getByLabel("Show the SQL before running").uncheck();
    await page.getByRole("button", { name: "Run", exact: true }).click();
    const error = page.locator("#query-error");
    await error.waitFor({ state: "visible", timeout: TIMEOUT });
    const text = await error.textContent();
    check(/ClickHouse error code \d+/.test(text), `a rejected question shows its code: ${text}`);
    await shot(page, "ask-rejected");
    return { sql, opened, rows: result.rows, rejected: text, marked };
  },

  /** Connect a topic to a table, see rows arrive, disconnect with confirmation. */
  async pipelines_flow(page) {
    const name = process.env.AURORA_UI_PIPELINE;
    const topic = process.env.AURORA_UI_TOPIC;
    const table = process.env.AURORA_UI_TABLE;
    const expectRows = Number(process.env.AURORA_UI_EXPECT_ROWS);
    await loggedIn(page);
    await page.getByRole("link", { name: "Pipelines" }).click();
    await page.getByLabel("Pipeline name").fill(name);
    await page.getByLabel("Topics (comma-separated)").fill(topic);
    await page.getByLabel("Table (database.table)").fill(table);
    const extra = process.env.AURORA_UI_PIPELINE_EXTRA;
    if (extra) await page.getByLabel("Other settings (JSON object, optional)").fill(extra);
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByText(`Connected ${name}`).waitFor({ timeout: 30000 });
    const row = page.locator(`tr[data-pipeline="${name}"]`);
    await row.waitFor({ timeout: TIMEOUT });
    await page.waitForFunction(
      ([n, want]) => {
        const cell = document.querySelector(`tr[data-pipeline="${n}"] td.inserted`);
        return cell && Number(cell.textContent.replace(/[^\d]/g, "")) >= want;
      },
      [name, expectRows],
      { timeout: 60000 },
    );
    const state = await row.locator(".badge").textContent();
    await shot(page, "pipelines-running");
    await row.getByRole("button", { name: `Disconnect ${name}` }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor({ timeout: TIMEOUT });
    await shot(page, "pipelines-confirm");
    await dialog.getByRole("button", { name: "Disconnect" }).click();
    await page.getByText(`Disconnected ${name}.`).waitFor({ timeout: 60000 });
    await row.waitFor({ state: "detached", timeout: TIMEOUT });
    return { state };
  },
};

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
  let code = 0;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const problems = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !/status of (4|5)\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    const result = await scenario(page, context);
    check(!problems.length, problems.join("\n"));
    console.log(`RESULT ${JSON.stringify(result)}`);
  } catch (e) {
    console.error(e instanceof Failure ? `FAILED: ${e.message}` : e.stack || String(e));
    code = 1;
  } finally {
    await browser.close();
  }
  process.exit(code);
}

main();
