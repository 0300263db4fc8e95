// agentgym leaderboard page: renders everything from the embedded DATA object (no network, no libraries).
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

const pct = (x) => (100 * x).toFixed(1) + "%";

// A success-rate bar with its 95% interval as an error bar (whiskers at the interval's ends).
function errorBar(rate, low, high) {
  const width = 160, height = 16, x = (v) => 2 + v * (width - 4);
  const box = svg("svg", { width, height, class: "errorbar", role: "img",
    "aria-label": `success ${pct(rate)}, 95% CI ${pct(low)} to ${pct(high)}` });
  box.append(svg("rect", { x: 2, y: 3, width: width - 4, height: 10, fill: "#eef1f5" }));
  box.append(svg("rect", { x: 2, y: 3, width: x(rate) - 2, height: 10, fill: "#7aa7e0", class: "rate" }));
  box.append(svg("line", { x1: x(low), x2: x(high), y1: 8, y2: 8, stroke: "#1d2330", "stroke-width": 1.5, class: "ci" }));
  for (const v of [low, high]) box.append(svg("line", { x1: x(v), x2: x(v), y1: 4, y2: 12, stroke: "#1d2330", "stroke-width": 1.5 }));
  return box;
}

function sortable(table, rows, columns, render) {
  const state = { key: "success", dir: -1 };
  const head = table.querySelector("thead tr");
  const body = table.querySelector("tbody");
  function draw() {
    const sorted = rows.slice().sort((a, b) => {
      const x = a[state.key], y = b[state.key];
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return state.dir * order;
    });
    body.replaceChildren(...sorted.map(render));
    for (const th of head.children) {
      th.classList.toggle("sorted-asc", th.dataset.key === state.key && state.dir > 0);
      th.classList.toggle("sorted-desc", th.dataset.key === state.key && state.dir < 0);
    }
  }
  for (const [key, label, cls] of columns) {
    const th = el("th", { class: cls || "" }, label);
    th.dataset.key = key;
    th.addEventListener("click", () => {
      state.dir = state.key === key ? -state.dir : (key === "agent" ? 1 : -1);
      state.key = key;
      draw();
    });
    head.append(th);
  }
  draw();
}

function boardTable(section) {
  const table = el("table", { class: "board" }, el("thead", {}, el("tr")), el("tbody"));
  const columns = [["agent", "Agent", "agent"], ["seeds_text", "Seeds"], ["success", "Success"],
    ["ci_low", "95% CI (Wilson)"], ["mean_score", "Score"], ["mean_turns", "Turns"], ["episodes", "Episodes"]];
  sortable(table, section.rows, columns, (r) => el("tr", {},
    el("td", { class: "agent", title: r.agent }, r.agent),
    el("td", {}, r.seeds_text),
    el("td", { class: "bar" }, el("div", { style: "display:flex;gap:6px;align-items:center" },
      errorBar(r.success, r.ci_low, r.ci_high), el("span", {}, pct(r.success)))),
    el("td", { class: "ci" }, `[${pct(r.ci_low)}, ${pct(r.ci_high)}]`),
    el("td", {}, r.mean_score.toFixed(3)),
    el("td", {}, r.mean_turns.toFixed(1)),
    el("td", {}, r.episodes)));
  return table;
}

function heatColor(rate) {
  return `hsl(${Math.round(120 * rate)}, 55%, ${Math.round(82 - 12 * rate)}%)`;
}

function heatMap(section) {
  const types = [...new Set(section.task_types.map((t) => t.task_type))].sort();
  const agents = section.rows.map((r) => r.agent);
  if (types.length < 1) return null;
  const cell = new Map(section.task_types.map((t) => [t.agent + "\u0000" + t.task_type, t]));
  const table = el("table", { class: "heat" },
    el("thead", {}, el("tr", {}, el("th", { class: "type" }, "task type"), ...agents.map((a) => el("th", { title: a }, a)))));
  const body = el("tbody");
  for (const type of types) {
    const tr = el("tr", {}, el("td", { class: "type" }, type));
    for (const agent of agents) {
      const t = cell.get(agent + "\u0000" + type);
      tr.append(t ? el("td", { style: `background:${heatColor(t.success)}`,
        title: `${agent} on ${type}: ${pct(t.success)} of ${t.episodes}, 95% CI [${pct(t.ci_low)}, ${pct(t.ci_high)}]` },
        `${pct(t.success)} (${t.episodes})`) : el("td", { class: "muted" }, "–"));
    }
    body.append(tr);
  }
  table.append(body);
  return table;
}

function protocolSection(section) {
  const box = el("section", { id: "p-" + section.key, class: "protocol-section" },
    el("h2", {}, `${section.env_id} · ${section.split}`),
    el("p", { class: "protocol" }, `max_turns=${section.max_turns} · engine ${section.engine_version} · manifest `,
      el("code", {}, section.manifest_hash.slice(0, 12)), " · protocol ", el("code", {}, section.key)),
    boardTable(section));
  const heat = heatMap(section);
  if (heat) box.append(el("h3", {}, "Success per task type (cell: rate and episodes; hover: 95% CI)"), heat);
  return box;
}

const PREFERRED_METRICS = ["charts/success", "eval/success", "eval/train_success", "charts/train_success", "charts/mean_reward"];

function lineChart(rows, metric) {
  const width = 460, height = 190, pad = { l: 44, r: 10, t: 8, b: 26 };
  const points = rows.filter((r) => typeof r[metric] === "number").map((r) => [r.step, r[metric]]);
  const box = svg("svg", { width, height, class: "curve" });
  if (!points.length) return box;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const X = (x) => pad.l + (x - x0) / (x1 - x0) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y - y0) / (y1 - y0) * (height - pad.t - pad.b);
  box.append(svg("rect", { x: pad.l, y: pad.t, width: width - pad.l - pad.r, height: height - pad.t - pad.b, fill: "#fafbfc", stroke: "#dde1e8" }));
  const label = (x, y, text, anchor) => { const t = svg("text", { x, y, "font-size": 10, "text-anchor": anchor, fill: "#5b6577" }); t.textContent = text; return t; };
  box.append(label(pad.l - 4, Y(y1) + 4, +y1.toPrecision(3), "end"), label(pad.l - 4, Y(y0), +y0.toPrecision(3), "end"),
    label(X(x0), height - 10, x0, "start"), label(X(x1), height - 10, x1, "end"), label((width + pad.l) / 2, height - 2, "step", "middle"));
  box.append(svg("polyline", { points: points.map(([x, y]) => `${X(x)},${Y(y)}`).join(" "), fill: "none", stroke: "#2b6cb0", "stroke-width": 2 }));
  for (const [x, y] of points) box.append(svg("circle", { cx: X(x), cy: Y(y), r: 2.5, fill: "#2b6cb0" }));
  return box;
}

function runsSection() {
  const box = el("section", { id: "runs" }, el("h2", {}, "Learning curves"));
  if (!DATA.runs.length) {
    box.append(el("p", { class: "muted" }, "No training runs given (agentgym leaderboard --html DIR --runs RUNS_DIR)."));
    return box;
  }
  for (const run of DATA.runs) {
    const metrics = [...new Set(run.rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== "step").sort();
    const chosen = PREFERRED_METRICS.find((m) => metrics.includes(m)) || metrics[0];
    const select = el("select", {}, ...metrics.map((m) => el("option", m === chosen ? { value: m, selected: "" } : { value: m }, m)));
    const holder = el("div", {}, lineChart(run.rows, chosen));
    select.addEventListener("change", () => holder.replaceChildren(lineChart(run.rows, select.value)));
    box.append(el("div", { class: "chart" }, el("div", { class: "title" }, run.name), select, holder,
      el("div", { class: "muted" }, `${run.rows.length} steps · ${run.file}`)));
  }
  return box;
}

function trajectoryView(t) {
  const protocol = DATA.protocols.find((p) => p.key === t.protocol);
  const out = el("div", { class: "trajectory" },
    el("p", {}, el("b", {}, `${t.agent}`), ` on ${protocol ? protocol.env_id : t.protocol} · task `, el("code", {}, t.task_id),
      ` (${t.task_type}) · seed ${t.seed} · episode ${t.episode} · ${t.won ? "won" : "not won"} · score ${t.score}`));
  if (t.goal) out.append(el("p", {}, el("b", {}, "Goal: "), t.goal));
  out.append(el("div", { class: "turn" }, el("div", { class: "turn-head" }, "Start"), el("pre", {}, t.initial)));
  t.turns.forEach((turn, i) => {
    const hooks = Object.entries(turn.hooks || {}).map(([k, v]) => `${k} ${(+v).toFixed(3)}`).join(", ");
    out.append(el("div", { class: "turn" + (turn.done && t.won && i === t.turns.length - 1 ? " won" : "") },
      el("div", { class: "turn-head" }, `Turn ${i + 1} · action `, el("span", { class: "action" }, turn.action),
        ` · reward ${turn.reward}` + (hooks ? ` · hook rewards: ${hooks}` : "") + (turn.done ? " · episode ends" : "")),
      turn.reply ? el("pre", { class: "reply muted" }, "reply: " + turn.reply) : null,
      el("pre", { class: "observation" }, turn.observation)));
  });
  return out;
}

function trajectorySection() {
  const box = el("section", { id: "trajectories", class: "viewer" }, el("h2", {}, "Trajectories"));
  if (!DATA.trajectories.length) {
    box.append(el("p", { class: "muted" }, "No stored trajectories (episodes evaluated before trajectories were kept have none)."));
    return box;
  }
  const envOf = (t) => (DATA.protocols.find((p) => p.key === t.protocol) || { env_id: t.protocol }).env_id;
  const select = el("select", { id: "trajectory-select" }, ...DATA.trajectories.map((t, i) =>
    el("option", { value: i }, `${envOf(t)} · ${t.agent} · seed ${t.seed} · episode ${t.episode} · ${t.task_id} · ${t.won ? "won" : "lost"} (${t.turns.length} turns)`)));
  const holder = el("div", { id: "trajectory-view" }, trajectoryView(DATA.trajectories[0]));
  select.addEventListener("change", () => holder.replaceChildren(trajectoryView(DATA.trajectories[+select.value])));
  box.append(el("p", { class: "muted" }, `Up to ${DATA.max_trajectories} episodes per agent, seed and protocol.`), select, holder);
  return box;
}

function main() {
  document.getElementById("meta").textContent = `${DATA.db} · generated ${DATA.generated} · rows are compared only within one protocol key`;
  const nav = document.getElementById("nav");
  const page = document.getElementById("main");
  page.replaceChildren();
  if (!DATA.protocols.length) page.append(el("p", {}, "No results in this database."));
  for (const section of DATA.protocols) {
    page.append(protocolSection(section));
    nav.append(el("a", { href: "#p-" + section.key },
      `${section.env_id.replace("agentgym/", "")} ${section.split} (${section.max_turns} turns)`));
  }
  page.append(runsSection(), trajectorySection());
  nav.append(el("a", { href: "#runs" }, "learning curves"), el("a", { href: "#trajectories" }, "trajectories"));
}

main();
