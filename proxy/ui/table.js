// A result table that sorts by any column (click or Enter/Space on its header button).

const NUMERIC = /^(Nullable\()?(U?Int\d+|Float\d+|Decimal)/;

export function isNumericType(type) {
  return NUMERIC.test(type || "");
}

/** Shows at most this many rows; the summary says when there are more. */
export const MAX_ROWS_SHOWN = 1000;

function compare(a, b, numeric) {
  if (a === null || a === undefined) return b === null || b === undefined ? 0 : 1;
  if (b === null || b === undefined) return -1;
  if (numeric) return Number(a) - Number(b);
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function cellText(value) {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Renders `columns` ([{name,type}]) and `rows` ([[...]]) into `container`. */
export function renderTable(container, columns, rows) {
  container.replaceChildren();
  if (!columns.length) return;
  const table = document.createElement("table");
  table.className = "data";
  const thead = table.createTHead();
  const head = thead.insertRow();
  table.createTBody();
  let sort = { index: -1, dir: 1 };

  const fill = () => {
    let shown = rows;
    if (sort.index >= 0) {
      const numeric = isNumericType(columns[sort.index].type);
      shown = [...rows].sort((x, y) => sort.dir * compare(x[sort.index], y[sort.index], numeric));
    }
    const body = document.createElement("tbody");
    for (const row of shown.slice(0, MAX_ROWS_SHOWN)) {
      const tr = body.insertRow();
      row.forEach((value, i) => {
        const td = tr.insertCell();
        td.textContent = cellText(value);
        if (isNumericType(columns[i].type)) td.className = "num";
        if (value === null) td.classList.add("null");
      });
    }
    table.replaceChild(body, table.tBodies[0]);
  };

  columns.forEach((column, index) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.setAttribute("aria-sort", "none");
    if (isNumericType(column.type)) th.className = "num";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.innerHTML = `<span></span><small></small><i aria-hidden="true"></i>`;
    button.children[0].textContent = column.name;
    button.children[1].textContent = column.type;
    button.title = `Sort by ${column.name}`;
    button.addEventListener("click", () => {
      sort = { index, dir: sort.index === index ? -sort.dir : 1 };
      for (const other of head.cells) {
        other.setAttribute("aria-sort", "none");
        other.querySelector("i").textContent = "";
      }
      th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
      button.querySelector("i").textContent = sort.dir > 0 ? "▲" : "▼";
      fill();
    });
    th.append(button);
    head.append(th);
  });
  container.append(table);
  fill();
}
