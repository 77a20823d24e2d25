// tutorlog operator dashboard: polls the daemon's JSON endpoints and draws its
// read models. No framework and nothing from another origin (the page's CSP
// allows this origin only); the charts are plain SVG built here.
//
// Every number on the page sits in its own element with a stable data-testid
// (tests/dashboard_e2e.rs reads them and compares them with the API). Text from
// the API (provider, learner and focus-area names) only ever goes into
// textContent, never into markup.
"use strict";

const POLL_MS = 3000;
// A slow daemon (a big view) is polled less often: 10× the last refresh time.
const POLL_MS_MAX = 60000;
const HISTOGRAM_BINS = 10;
const ALGO_RUNS_SHOWN = 20;
const BENCHMARK_CATEGORIES = ["coding", "math", "research", "language", "empathy", "general"];
const SVG_NS = "http://www.w3.org/2000/svg";

let renders = 0;
let timer = null;

// ---- DOM helpers -----------------------------------------------------------

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    node.setAttribute(key === "testid" ? "data-testid" : key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// A number in its own element, so a test can read exactly what is shown.
function num(testid, text, cls) {
  return el("span", { testid, class: cls ? `num ${cls}` : "num" }, String(text));
}

function tile(testid, value, label) {
  return el("div", { class: "tile" }, num(testid, value), el("span", { class: "label" }, label));
}

function setText(testid, text) {
  for (const node of document.querySelectorAll(`[data-testid="${testid}"]`)) {
    node.textContent = String(text);
  }
}

function replaceBody(panelId, nodes) {
  const body = document.querySelector(`#${panelId} .body`);
  body.replaceChildren(...nodes);
}

// ---- number formats (the test parses these back) ---------------------------

// Integer micro-USD as dollars with all six digits, without float rounding.
function usd(micros) {
  const whole = Math.floor(micros / 1e6);
  const fraction = String(micros % 1e6).padStart(6, "0");
  return `${whole}.${fraction}`;
}

function millis(micros) {
  return micros === null || micros === undefined ? "—" : (micros / 1000).toFixed(1);
}

function percent(fraction) {
  return (fraction * 100).toFixed(1);
}

function utcTime(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "—";
}

function currentMonthUtc() {
  return new Date().toISOString().slice(0, 7);
}

// ---- fetching ---------------------------------------------------------------

async function fetchJson(path) {
  try {
    const response = await fetch(path, { cache: "no-store", headers: { accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (_notJson) {
      body = null;
    }
    return { path, status: response.status, body };
  } catch (error) {
    return { path, status: 0, body: null, error: String(error) };
  }
}

function noProviders(doc) {
  return doc.status === 503 && doc.body && doc.body.error && doc.body.error.code === "no_providers";
}

// What to show instead of a panel whose endpoint did not answer 200.
function failure(doc, panel) {
  if (noProviders(doc)) {
    return el("p", { class: "empty", testid: `no-providers-${panel}` }, "no providers configured");
  }
  const message = doc.body && doc.body.error ? doc.body.error.message : doc.error || "no answer";
  return el("p", { class: "error" }, `${doc.path}: ${doc.status || "unreachable"} ${message}`);
}

// One refresh: read stream_stats first, then every other view with
// min_position at that log position, so every panel shows at least the log up
// to the position in the header (read-your-writes across views).
async function poll() {
  const began = performance.now();
  const stats = await fetchJson("/api/v1/views/stream_stats");
  const connection = document.getElementById("connection");
  if (stats.status !== 200) {
    connection.textContent = `daemon not answering: ${stats.status || "unreachable"}`;
    connection.hidden = false;
    return schedule(began);
  }
  connection.hidden = true;
  const next = stats.body.next_position;
  const at = (path) => (next > 0 ? `${path}${path.includes("?") ? "&" : "?"}min_position=${next - 1}` : path);
  const [mastery, spend, health, budget, routing, benchmarks, algoRuns] = await Promise.all([
    fetchJson(at("/api/v1/views/mastery")),
    fetchJson(at("/api/v1/views/spend")),
    fetchJson(at("/api/v1/provider-health")),
    fetchJson("/api/v1/budget/status"),
    fetchJson(at("/api/v1/views/routing")),
    fetchJson(at("/api/v1/views/benchmarks")),
    fetchJson(at(`/api/v1/audit/algo-runs?limit=${ALGO_RUNS_SHOWN}`)),
  ]);
  render({ stats, mastery, spend, health, budget, routing, benchmarks, algoRuns });
  return schedule(began);
}

function schedule(began) {
  const elapsed = performance.now() - began;
  clearTimeout(timer);
  timer = setTimeout(refresh, Math.min(POLL_MS_MAX, Math.max(POLL_MS, 10 * elapsed)));
}

function refresh() {
  // A hidden tab keeps its timer but asks nothing; it refreshes when shown.
  if (document.visibilityState === "hidden") return schedule(performance.now());
  return poll();
}

function render(docs) {
  const stats = docs.stats.body;
  setText("log-next-position", stats.next_position);
  setText("events-total", stats.view.events_total);
  setText("streams-count", stats.view.stream_count);
  for (const [name, doc] of [
    ["mastery", docs.mastery],
    ["spend", docs.spend],
    ["provider_health", docs.health],
    ["routing", docs.routing],
    ["benchmarks", docs.benchmarks],
    ["algo_runs", docs.algoRuns],
  ]) {
    setText(`position-${name}`, doc.status === 200 ? doc.body.next_position : "—");
  }
  replaceBody("panel-mastery", renderMastery(docs.mastery));
  replaceBody("panel-spend", renderSpend(docs.spend, docs.budget));
  replaceBody("panel-health", renderHealth(docs.health));
  replaceBody("panel-routing", renderRouting(docs.routing, docs.budget));
  replaceBody("panel-benchmarks", renderBenchmarks(docs.benchmarks, docs.budget));
  replaceBody("panel-algo-runs", renderAlgoRuns(docs.algoRuns));
  renders += 1;
  setText("render-count", renders);
  setText("updated-at", new Date().toISOString().slice(11, 19) + " UTC");
  document.body.dataset.state = "ready";
}

// ---- learners and mastery ---------------------------------------------------

// Bin i holds mastery in [10·i, 10·i + 10); 100 goes into the last bin.
function masteryBin(mastery) {
  return Math.max(0, Math.min(HISTOGRAM_BINS - 1, Math.floor(mastery / (100 / HISTOGRAM_BINS))));
}

function renderMastery(doc) {
  if (doc.status !== 200) return [failure(doc, "mastery")];
  const view = doc.body.view;
  const areas = new Map();
  let attempts = 0;
  for (const rows of Object.values(view.learners)) {
    for (const [area, row] of Object.entries(rows)) {
      if (!areas.has(area)) areas.set(area, { learners: 0, sum: 0, bins: new Array(HISTOGRAM_BINS).fill(0) });
      const stats = areas.get(area);
      stats.learners += 1;
      stats.sum += row.mastery;
      stats.bins[masteryBin(row.mastery)] += 1;
      attempts += row.attempts;
    }
  }
  const challenges = Object.values(view.challenges).reduce((sum, c) => sum + c.completed, 0);
  const tiles = el(
    "div",
    { class: "tiles" },
    tile("learners-count", Object.keys(view.learners).length, "learners"),
    tile("focus-areas-count", areas.size, "focus areas practised"),
    tile("attempts-total", attempts, "rounds answered"),
    tile("challenges-completed", challenges, "challenges graded"),
  );
  if (areas.size === 0) return [tiles, el("p", { class: "empty" }, "no training yet")];
  const cards = [...areas.keys()].sort().map((area) => {
    const stats = areas.get(area);
    return el(
      "div",
      { class: "card" },
      el("h3", {}, area),
      el(
        "div",
        { class: "muted" },
        num(`mastery-learners-${area}`, stats.learners),
        " learners · mean mastery ",
        num(`mastery-mean-${area}`, (stats.sum / stats.learners).toFixed(1)),
      ),
      histogram(area, stats.bins),
    );
  });
  return [tiles, el("div", { class: "cards" }, ...cards)];
}

function histogram(area, bins) {
  const width = 300;
  const plot = 280;
  const height = 120;
  const top = 14;
  const bottom = 18;
  const barWidth = plot / bins.length;
  const most = Math.max(1, ...bins);
  const chart = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `mastery histogram of ${area}`,
  });
  bins.forEach((count, index) => {
    const barHeight = ((height - top - bottom) * count) / most;
    const x = index * barWidth;
    const y = height - bottom - barHeight;
    chart.append(
      svg("rect", { class: "track", x: x + 2, y: top, width: barWidth - 4, height: height - top - bottom }),
      svg(
        "rect",
        { class: "bar", x: x + 2, y, width: barWidth - 4, height: barHeight },
        svg("title", {}, `${count} learners with mastery ${index * 10}–${index * 10 + 10}`),
      ),
      svg(
        "text",
        {
          testid: `mastery-bin-${area}-${index}`,
          class: count === 0 ? "zero" : null,
          x: x + barWidth / 2,
          y: y - 3,
          "text-anchor": "middle",
        },
        String(count),
      ),
      svg("text", { class: "axis", x, y: height - 4, "text-anchor": index === 0 ? "start" : "middle" }, String(index * 10)),
    );
  });
  chart.append(svg("text", { class: "axis", x: plot, y: height - 4, "text-anchor": "middle" }, "100"));
  return chart;
}

// ---- spend ------------------------------------------------------------------

function renderSpend(doc, budget) {
  if (doc.status !== 200) return [failure(doc, "spend")];
  const budgetRows = budget.status === 200 ? budget.body.providers : [];
  const period = budgetRows.length > 0 ? budgetRows[0].period : currentMonthUtc();
  setText("spend-period", period);
  const spent = doc.body.view.providers;
  const names = [...new Set([...budgetRows.map((row) => row.provider), ...Object.keys(spent)])];
  const nodes = [];
  if (budget.status !== 200) nodes.push(failure(budget, "spend"));
  if (names.length === 0) return nodes;
  const rows = names.map((name) => {
    const row = spent[name] && spent[name].periods[period];
    const configured = budgetRows.find((b) => b.provider === name);
    return {
      name,
      committed: row ? row.committed_micros : 0,
      reserved: row ? row.reserved_micros : 0,
      free: row ? row.free : configured ? configured.free : true,
      limit: row ? row.limit_micros : configured ? Math.round(configured.total_usd * 1e6) : 0,
      remaining: row ? row.remaining_micros : null,
      percentUsed: row ? row.percent_used : null,
      commits: row ? row.counts.commits : 0,
      exceeded: row ? row.counts.exceeded : 0,
    };
  });
  nodes.push(spendChart(rows));
  nodes.push(
    el(
      "div",
      { class: "legend" },
      el("span", {}, el("span", { class: "swatch committed" }), "committed"),
      el("span", {}, el("span", { class: "swatch reserved" }), "reserved"),
      el("span", {}, el("span", { class: "swatch limit" }), "monthly limit"),
    ),
  );
  const table = el(
    "table",
    {},
    el(
      "tr",
      {},
      el("th", {}, "provider"),
      el("th", { class: "right" }, "committed $"),
      el("th", { class: "right" }, "reserved $"),
      el("th", { class: "right" }, "limit $"),
      el("th", { class: "right" }, "used %"),
      el("th", { class: "right" }, "calls"),
      el("th", { class: "right" }, "refused"),
    ),
    ...rows.map((r) =>
      el(
        "tr",
        {},
        el("td", {}, r.name),
        el("td", { class: "right" }, num(`spend-committed-usd-${r.name}`, usd(r.committed))),
        el("td", { class: "right" }, num(`spend-reserved-usd-${r.name}`, usd(r.reserved))),
        el("td", { class: "right" }, r.free ? el("span", { testid: `spend-free-${r.name}` }, "free") : num(`spend-limit-usd-${r.name}`, usd(r.limit))),
        el("td", { class: "right" }, r.percentUsed === null ? "—" : num(`spend-percent-used-${r.name}`, r.percentUsed.toFixed(2))),
        el("td", { class: "right" }, num(`spend-commits-${r.name}`, r.commits)),
        el("td", { class: "right" }, num(`spend-exceeded-${r.name}`, r.exceeded)),
      ),
    ),
  );
  nodes.push(el("div", { class: "scroll" }, table));
  return nodes;
}

// One bar per provider: committed then reserved. A provider with a limit is
// drawn against it (the whole track is the limit); free providers share one
// scale, the largest free spend. Numbers are in the table, not on the bars.
function spendChart(rows) {
  const width = 520;
  const label = 110;
  const rowHeight = 22;
  const span = width - label - 40;
  const freeScale = Math.max(1, ...rows.filter((r) => r.free).map((r) => r.committed + r.reserved));
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`, role: "img", "aria-label": "spend per provider" });
  rows.forEach((r, index) => {
    const y = index * rowHeight + 4;
    const scale = r.free ? freeScale : Math.max(1, r.limit, r.committed + r.reserved);
    const committed = (span * r.committed) / scale;
    const reserved = (span * r.reserved) / scale;
    chart.append(
      svg("text", { x: 0, y: y + 12 }, r.name),
      svg("rect", { class: "track", x: label, y, width: span, height: 14 }),
      svg("rect", { class: "bar", x: label, y, width: committed, height: 14 }, svg("title", {}, `committed $${usd(r.committed)}`)),
      svg("rect", { class: "bar-reserved", x: label + committed, y, width: reserved, height: 14 }, svg("title", {}, `reserved $${usd(r.reserved)}`)),
    );
    if (r.free) {
      chart.append(svg("text", { class: "axis", x: label + span + 4, y: y + 11 }, "free"));
    } else {
      const x = label + (span * r.limit) / scale;
      chart.append(svg("line", { class: "limit", x1: x, x2: x, y1: y - 2, y2: y + 16 }, svg("title", {}, `limit $${usd(r.limit)}`)));
    }
  });
  return chart;
}

// ---- circuits and latency ---------------------------------------------------

function renderHealth(doc) {
  if (doc.status !== 200) return [failure(doc, "health")];
  const rows = doc.body.providers;
  if (rows.length === 0) return [el("p", { class: "empty" }, "no providers configured")];
  const table = el(
    "table",
    {},
    el(
      "tr",
      {},
      el("th", {}, "provider"),
      el("th", {}, "circuit"),
      el("th", { class: "right" }, "calls"),
      el("th", { class: "right" }, "failures"),
      el("th", { class: "right", title: "failed share of the last 100 calls" }, "error %"),
      el("th", { class: "right" }, "p50 ms"),
      el("th", { class: "right" }, "p99 ms"),
      el("th", {}, "last failure"),
    ),
    ...rows.map((row) => {
      const h = row.history;
      const lastFailure = h && h.last_failure;
      return el(
        "tr",
        {},
        el("td", {}, row.provider),
        el("td", {}, el("span", { class: `state state-${row.state}`, testid: `health-state-${row.provider}` }, row.state)),
        el("td", { class: "right" }, num(`health-calls-${row.provider}`, h ? h.calls : 0)),
        el("td", { class: "right" }, num(`health-failures-${row.provider}`, h ? h.failures : 0)),
        el("td", { class: "right" }, num(`health-error-rate-${row.provider}`, percent(h ? h.error_rate : 0))),
        el("td", { class: "right" }, num(`health-latency-p50-ms-${row.provider}`, millis(h && h.latency_p50_micros))),
        el("td", { class: "right" }, num(`health-latency-p99-ms-${row.provider}`, millis(h && h.latency_p99_micros))),
        el(
          "td",
          { class: "muted", testid: `health-last-failure-${row.provider}`, title: lastFailure ? `${utcTime(lastFailure.at)} UTC: ${lastFailure.message}` : null },
          lastFailure ? `${lastFailure.kind} at ${utcTime(lastFailure.at).slice(11)}` : "—",
        ),
      );
    }),
  );
  return [
    latencyChart(rows),
    el(
      "div",
      { class: "legend" },
      el("span", {}, el("span", { class: "swatch p50" }), "p50"),
      el("span", {}, el("span", { class: "swatch p99" }), "p99 (of the last 1,000 successful calls) · error %: of the last 100 calls"),
    ),
    el("div", { class: "scroll" }, table),
  ];
}

function latencyChart(rows) {
  const width = 520;
  const label = 110;
  const rowHeight = 30;
  const span = width - label - 10;
  const p99 = (row) => (row.history && row.history.latency_p99_micros) || 0;
  const p50 = (row) => (row.history && row.history.latency_p50_micros) || 0;
  const scale = Math.max(1, ...rows.map(p99));
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${rows.length * rowHeight + 4}`, role: "img", "aria-label": "latency per provider" });
  rows.forEach((row, index) => {
    const y = index * rowHeight + 4;
    chart.append(
      svg("text", { x: 0, y: y + 15 }, row.provider),
      svg("rect", { class: "bar-light", x: label, y, width: (span * p50(row)) / scale, height: 10 }, svg("title", {}, `p50 ${millis(p50(row))} ms`)),
      svg("rect", { class: "bar", x: label, y: y + 11, width: (span * p99(row)) / scale, height: 10 }, svg("title", {}, `p99 ${millis(p99(row))} ms`)),
      p99(row) === 0 ? svg("text", { class: "axis", x: label, y: y + 15 }, "no successful calls") : null,
    );
  });
  return chart;
}

// ---- routing performance ----------------------------------------------------

// The routing view is provider → model → category → day; sum it per provider.
function routingTotals(view) {
  const totals = [];
  for (const [provider, models] of Object.entries(view.providers)) {
    const sum = { provider, requests: 0, successes: 0, failovers: 0, durationMicros: 0, costMicros: 0 };
    for (const categories of Object.values(models)) {
      for (const days of Object.values(categories)) {
        for (const row of Object.values(days)) {
          sum.requests += row.requests;
          sum.successes += row.successes;
          sum.failovers += row.failovers;
          sum.durationMicros += row.duration_sum_micros;
          sum.costMicros += row.cost_actual_micros;
        }
      }
    }
    totals.push(sum);
  }
  return totals;
}

function renderRouting(doc, budget) {
  if (doc.status !== 200) return [failure(doc, "routing")];
  const totals = routingTotals(doc.body.view);
  const nodes = [];
  if (noProviders(budget)) nodes.push(failure(budget, "routing"));
  if (totals.length === 0) return [...nodes, el("p", { class: "empty" }, "no gateway requests yet")];
  const rate = (t) => (t.requests > 0 ? t.successes / t.requests : 0);
  const table = el(
    "table",
    {},
    el(
      "tr",
      {},
      el("th", {}, "provider"),
      el("th", { class: "right" }, "requests"),
      el("th", { class: "right" }, "successes"),
      el("th", { class: "right" }, "success %"),
      el("th", { class: "right" }, "failovers"),
      el("th", { class: "right" }, "mean ms"),
      el("th", { class: "right" }, "actual $"),
    ),
    ...totals.map((t) =>
      el(
        "tr",
        {},
        el("td", {}, t.provider),
        el("td", { class: "right" }, num(`routing-requests-${t.provider}`, t.requests)),
        el("td", { class: "right" }, num(`routing-successes-${t.provider}`, t.successes)),
        el("td", { class: "right" }, num(`routing-success-rate-${t.provider}`, percent(rate(t)))),
        el("td", { class: "right" }, num(`routing-failovers-${t.provider}`, t.failovers)),
        el("td", { class: "right" }, num(`routing-mean-latency-ms-${t.provider}`, millis(t.requests > 0 ? t.durationMicros / t.requests : 0))),
        el("td", { class: "right" }, num(`routing-cost-actual-usd-${t.provider}`, usd(t.costMicros))),
      ),
    ),
  );
  nodes.push(routingChart(totals));
  nodes.push(
    el(
      "div",
      { class: "legend" },
      el("span", {}, el("span", { class: "swatch success" }), "succeeded"),
      el("span", {}, el("span", { class: "swatch failure" }), "failed"),
      el("span", {}, num("routing-executions-total", doc.body.view.executions_total), " executions recorded"),
    ),
  );
  nodes.push(el("div", { class: "scroll" }, table));
  return nodes;
}

function routingChart(totals) {
  const width = 520;
  const label = 110;
  const rowHeight = 22;
  const span = width - label - 10;
  const scale = Math.max(1, ...totals.map((t) => t.requests));
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${totals.length * rowHeight + 4}`, role: "img", "aria-label": "requests per provider" });
  totals.forEach((t, index) => {
    const y = index * rowHeight + 4;
    const ok = (span * t.successes) / scale;
    const failed = (span * (t.requests - t.successes)) / scale;
    chart.append(
      svg("text", { x: 0, y: y + 12 }, t.provider),
      svg("rect", { class: "bar-good", x: label, y, width: ok, height: 14 }, svg("title", {}, `${t.successes} succeeded`)),
      svg("rect", { class: "bar-bad", x: label + ok, y, width: failed, height: 14 }, svg("title", {}, `${t.requests - t.successes} failed`)),
    );
  });
  return chart;
}

// ---- benchmarks -------------------------------------------------------------

function qualityClass(quality) {
  return `heat q${Math.max(0, Math.min(4, Math.floor(quality / 20)))}`;
}

function renderBenchmarks(doc, budget) {
  if (doc.status !== 200) return [failure(doc, "benchmarks")];
  const { latest, runs } = doc.body.view;
  const nodes = [];
  if (noProviders(budget)) nodes.push(failure(budget, "benchmarks"));
  const providers = Object.keys(latest).sort();
  if (providers.length === 0) {
    return [...nodes, el("p", { class: "empty" }, "no benchmark results yet (POST /api/v1/admin/run-benchmarks)")];
  }
  const seen = new Set(providers.flatMap((p) => Object.keys(latest[p])));
  const categories = [...BENCHMARK_CATEGORIES.filter((c) => seen.has(c)), ...[...seen].filter((c) => !BENCHMARK_CATEGORIES.includes(c)).sort()];
  const table = el(
    "table",
    {},
    el("tr", {}, el("th", {}, "provider"), ...categories.map((c) => el("th", { class: "right" }, c))),
    ...providers.map((p) =>
      el(
        "tr",
        {},
        el("td", {}, p),
        ...categories.map((c) => {
          const row = latest[p][c];
          if (!row) return el("td", { class: "heat none" }, "—");
          return el(
            "td",
            { class: qualityClass(row.mean_quality), title: `run ${row.run_id} at ${utcTime(row.recorded_at)}` },
            num(`bench-quality-${p}-${c}`, row.mean_quality.toFixed(1)),
            el(
              "small",
              {},
              num(`bench-success-rate-${p}-${c}`, percent(row.success_rate)),
              "% · ",
              num(`bench-latency-ms-${p}-${c}`, millis(row.mean_latency_micros)),
              " ms",
            ),
          );
        }),
      ),
    ),
  );
  nodes.push(el("div", { class: "scroll" }, table));
  nodes.push(el("div", { class: "legend" }, "cell: mean quality 0–100 · success % · mean latency of the provider's latest run in that category"));
  const last = runs[runs.length - 1];
  if (last) {
    nodes.push(
      el(
        "p",
        { class: "muted" },
        "last run ",
        el("span", { testid: "bench-last-run-status" }, last.status),
        ` (${last.trigger}, `,
        el("span", { testid: "bench-last-run-started" }, utcTime(last.started_at || last.scheduled_at)),
        "): ",
        num("bench-last-run-results", last.results),
        " of ",
        num("bench-last-run-planned", last.tests_planned),
        " tests, ",
        num("bench-last-run-failures", last.failures),
        " failed",
      ),
    );
  }
  return nodes;
}

// ---- algorithm runs ---------------------------------------------------------

function durationMillis(run) {
  if (!run.completed_at) return null;
  return Date.parse(run.completed_at) - Date.parse(run.started_at);
}

function renderAlgoRuns(doc) {
  if (doc.status !== 200) return [failure(doc, "algo-runs")];
  const runs = doc.body.runs;
  const byStatus = { SUCCESS: 0, RUNNING: 0, FAILED: 0 };
  for (const run of runs) byStatus[run.status] = (byStatus[run.status] || 0) + 1;
  const tiles = el(
    "div",
    { class: "tiles" },
    tile("algo-runs-shown", runs.length, "runs shown"),
    ...Object.entries(byStatus).map(([status, count]) => tile(`algo-runs-status-${status}`, count, status.toLowerCase())),
  );
  if (runs.length === 0) return [tiles, el("p", { class: "empty" }, "no algorithm runs yet")];
  const table = el(
    "table",
    {},
    el(
      "tr",
      {},
      el("th", {}, "started (UTC)"),
      el("th", {}, "algorithm"),
      el("th", { class: "right" }, "version"),
      el("th", {}, "params"),
      el("th", {}, "trigger"),
      el("th", {}, "status"),
      el("th", {}, "learner"),
      el("th", { class: "right" }, "ms"),
      el("th", {}, "output"),
    ),
    ...runs.map((run, index) => {
      const took = durationMillis(run);
      const summary = run.error || run.output_summary || "";
      return el(
        "tr",
        { "data-run-id": run.run_id },
        el("td", { testid: `algo-run-started-${index}` }, utcTime(run.started_at)),
        el("td", { testid: `algo-run-key-${index}` }, run.key),
        el("td", { class: "right" }, num(`algo-run-version-${index}`, run.version)),
        el("td", { class: "muted", title: run.params_checksum }, run.params_checksum.slice(0, 8)),
        el("td", {}, run.trigger),
        el("td", { class: `status-${run.status}`, testid: `algo-run-status-${index}` }, run.status),
        el("td", {}, run.user_id || "—"),
        el("td", { class: "right" }, took === null ? "—" : num(`algo-run-duration-ms-${index}`, took)),
        el("td", { class: "muted", title: summary }, summary.length > 60 ? `${summary.slice(0, 59)}…` : summary),
      );
    }),
  );
  return [tiles, el("div", { class: "scroll" }, table)];
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") poll();
});
poll();
