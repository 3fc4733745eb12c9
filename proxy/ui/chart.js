// Charts drawn as SVG from a result's columns and rows: a line for time series, bars for category + number.
// Small on purpose (no library): two chart kinds, one y axis, labelled ticks, a legend, an accessible name.

import { isNumericType } from "./table.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#1d4ed8", "#b45309", "#047857", "#b91c1c", "#6d28d9", "#0e7490", "#be185d", "#374151"];
// The drawing's size in CSS pixels, set per drawing from the space it has, so that text keeps its size.
let W = 800;
let H = 320;
const M = { left: 64, right: 16, top: 16, bottom: 40 };
const MAX_SERIES = 8;
const MAX_BARS = 40;

const TIME = /^(Nullable\()?(Date|DateTime)\b/;

/** Which chart fits the result: {kind: "line"|"bar"|"none", x, ys, series}. */
export function chartShape(columns, rows) {
  const none = { kind: "none", x: -1, ys: [], series: -1 };
  if (!rows.length || columns.length < 2) return none;
  const time = columns.findIndex((c) => TIME.test(c.type));
  const numeric = columns.map((c, i) => i).filter((i) => i !== time && isNumericType(columns[i].type));
  const category = columns.findIndex((c, i) => i !== time && !isNumericType(c.type));
  if (!numeric.length) return none;
  if (time >= 0) {
    return category >= 0
      ? { kind: "line", x: time, ys: [numeric[0]], series: category }
      : { kind: "line", x: time, ys: numeric.slice(0, MAX_SERIES), series: -1 };
  }
  if (category >= 0) return { kind: "bar", x: category, ys: [numeric[0]], series: -1 };
  if (numeric.length >= 2) return { kind: "bar", x: numeric[0], ys: [numeric[1]], series: -1 };
  return none;
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function parseTime(value) {
  // ClickHouse writes DateTime as "2026-10-01 12:00:00" and Date as "2026-10-01" (server time zone).
  const t = Date.parse(String(value).replace(" ", "T"));
  return Number.isNaN(t) ? null : t;
}

/** Round tick values covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  if (lo === hi) {
    hi = lo + 1;
    lo = lo >= 0 ? 0 : lo - 1;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const start = Math.floor(lo / step) * step;
  const out = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < hi) out.push(out[out.length - 1] + step);
  return out;
}

const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });

function timeLabel(t, span) {
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, "0");
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (span > 3 * 86400e3) return date;
  if (span > 86400e3) return `${date.slice(5)} ${time}`;
  return time;
}

function truncate(s, n = 14) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Builds the series to draw: [{name, points:[[x, y]]}] and the x domain. */
function lineSeries(columns, rows, shape) {
  const timeX = TIME.test(columns[shape.x].type);
  const xOf = (row, i) => (timeX ? parseTime(row[shape.x]) : isNumericType(columns[shape.x].type) ? Number(row[shape.x]) : i);
  let series;
  if (shape.series >= 0) {
    const groups = new Map();
    rows.forEach((row, i) => {
      const key = row[shape.series] === null ? "NULL" : String(row[shape.series]);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push([xOf(row, i), Number(row[shape.ys[0]])]);
    });
    const total = (pts) => pts.reduce((s, p) => s + Math.abs(p[1]), 0);
    series = [...groups.entries()]
      .sort((a, b) => total(b[1]) - total(a[1]))
      .slice(0, MAX_SERIES)
      .map(([name, points]) => ({ name, points }));
  } else {
    series = shape.ys.map((y) => ({
      name: columns[y].name,
      points: rows.map((row, i) => [xOf(row, i), Number(row[y])]),
    }));
  }
  for (const s of series) s.points = s.points.filter((p) => p[0] !== null && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
  return { series, timeX, categorical: !timeX && !isNumericType(columns[shape.x].type) };
}

function yAxis(svg, lo, hi, y) {
  const ts = ticks(lo, hi);
  for (const t of ts) {
    const py = y(t);
    svg.append(el("line", { x1: M.left, x2: W - M.right, y1: py, y2: py, class: "grid" }));
    svg.append(el("text", { x: M.left - 8, y: py + 4, "text-anchor": "end", class: "tick" }, compact.format(t)));
  }
  return ts;
}

/** Draws `kind` ("line" or "bar") of the result into `figure`; returns false when there is nothing to draw. */
export function drawChart(figure, columns, rows, kind, shape) {
  figure.replaceChildren();
  if (kind === "none" || shape.kind === "none") return false;
  W = Math.max(300, Math.min(1100, (figure.parentElement && figure.parentElement.clientWidth - 32) || 800));
  H = W < 520 ? 240 : 320;
  const maxLabels = Math.max(2, Math.floor((W - M.left - M.right) / 96));
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "plot" });
  const legend = document.createElement("ul");
  legend.className = "legend";
  const plotW = W - M.left - M.right;
  // Room under the axis: more for slanted category labels.
  const bottom = kind === "bar" && new Set(rows.map((r) => r[shape.x])).size > 6 ? 76 : M.bottom;
  const plotH = H - M.top - bottom;
  const yName = columns[shape.ys[0]].name;
  const xName = columns[shape.x].name;

  if (kind === "line") {
    const { series, timeX, categorical } = lineSeries(columns, rows, shape);
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const ysv = series.flatMap((s) => s.points.map((p) => p[1]));
    if (!xs.length) return false;
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs);
    const yt = ticks(Math.min(0, ...ysv), Math.max(...ysv));
    const ylo = yt[0];
    const yhi = yt[yt.length - 1];
    const x = (v) => M.left + (x1 === x0 ? plotW / 2 : ((v - x0) / (x1 - x0)) * plotW);
    const y = (v) => M.top + plotH - ((v - ylo) / (yhi - ylo)) * plotH;
    yAxis(svg, ylo, yhi, y);
    const xticks = timeX || !categorical ? ticks(x0, x1, maxLabels).filter((t) => t >= x0 && t <= x1) : [];
    if (timeX) {
      const span = x1 - x0;
      const uniq = [...new Set(xs)].sort((a, b) => a - b);
      for (let i = 0; i < uniq.length; i += Math.max(1, Math.ceil(uniq.length / maxLabels))) {
        svg.append(el("text", { x: x(uniq[i]), y: H - bottom + 18, "text-anchor": "middle", class: "tick" }, timeLabel(uniq[i], span)));
      }
    } else if (categorical) {
      const every = Math.ceil(rows.length / maxLabels);
      rows.forEach((row, i) => {
        if (i % every === 0) {
          svg.append(el("text", { x: x(i), y: H - bottom + 18, "text-anchor": "middle", class: "tick" }, truncate(row[shape.x])));
        }
      });
    } else {
      for (const t of xticks) svg.append(el("text", { x: x(t), y: H - bottom + 18, "text-anchor": "middle", class: "tick" }, compact.format(t)));
    }
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }));
      if (s.points.length <= 60) {
        for (const p of s.points) svg.append(el("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: color }));
      }
      const li = document.createElement("li");
      li.innerHTML = `<span class="swatch"></span>`;
      li.firstChild.style.background = color;
      li.append(document.createTextNode(s.name));
      legend.append(li);
    });
    svg.setAttribute("aria-label", `Line chart of ${yName} over ${xName}, ${series.length} series, ${xs.length} points`);
  } else {
    const sums = new Map();
    for (const row of rows) {
      const key = row[shape.x] === null ? "NULL" : String(row[shape.x]);
      sums.set(key, (sums.get(key) || 0) + Number(row[shape.ys[0]]));
    }
    const bars = [...sums.entries()].filter((b) => Number.isFinite(b[1])).slice(0, MAX_BARS);
    if (!bars.length) return false;
    const values = bars.map((b) => b[1]);
    const yt = ticks(Math.min(0, ...values), Math.max(0, ...values));
    const ylo = yt[0];
    const yhi = yt[yt.length - 1];
    const y = (v) => M.top + plotH - ((v - ylo) / (yhi - ylo)) * plotH;
    yAxis(svg, ylo, yhi, y);
    const band = plotW / bars.length;
    const every = Math.ceil(bars.length / (maxLabels * 2));
    bars.forEach(([label, value], i) => {
      const top = y(Math.max(0, value));
      const height = Math.abs(y(value) - y(0));
      const width = Math.max(1, Math.min(band * 0.7, 96));
      const rect = el("rect", {
        x: M.left + i * band + (band - width) / 2,
        y: top,
        width,
        height: Math.max(0.5, height),
        fill: COLORS[0],
        class: "bar",
      });
      rect.append(el("title", {}, `${label}: ${value}`));
      svg.append(rect);
      if (i % every === 0) {
        const tx = M.left + i * band + band / 2;
        const ty = H - bottom + 14;
        const rotate = bars.length > 6;
        svg.append(
          el(
            "text",
            {
              x: tx,
              y: ty,
              "text-anchor": rotate ? "end" : "middle",
              transform: rotate ? `rotate(-35 ${tx} ${ty})` : "",
              class: "tick",
            },
            truncate(label),
          ),
        );
      }
    });
    const li = document.createElement("li");
    li.innerHTML = `<span class="swatch"></span>`;
    li.firstChild.style.background = COLORS[0];
    li.append(document.createTextNode(`${yName} by ${xName}${sums.size > MAX_BARS ? ` (first ${MAX_BARS} of ${sums.size})` : ""}`));
    legend.append(li);
    svg.setAttribute("aria-label", `Bar chart of ${yName} by ${xName}, ${bars.length} bars`);
  }
  svg.append(el("line", { x1: M.left, x2: W - M.right, y1: H - bottom, y2: H - bottom, class: "axis" }));
  figure.append(svg, legend);
  return true;
}
