// The AI cost page: reads the stats, daily-trend and alerts APIs with the staff session. Each panel
// loads on its own, so while the schema is broken the panels whose tables exist still render.
(function () {
  "use strict";
  const root = document.getElementById("ai-cost");
  if (!root) return;
  const charts = {};
  // Charts appear at once for people who ask for less motion (and in the screenshot tests).
  if (window.matchMedia("(prefers-reduced-motion: reduce)").matches) Chart.defaults.animation = false;
  const q = (testid) => root.querySelector(`[data-testid="${testid}"]`);

  // The page's sentences in the request's language, and how it writes money and dates
  // (dashboard.admin_site._page_text; money follows core.money.money_format).
  const T = JSON.parse(document.getElementById("aicost-text").textContent);
  const say = (sentence, values) => sentence.replace(/%\((\w+)\)s/g, (_all, name) => String(values[name]));
  const integer = (n) => Number(n).toLocaleString("en-US");
  // Calls of models without a price entry have the provider "unknown" (usage.reports.UNKNOWN_PROVIDER).
  const providerName = (provider) => (provider === "unknown" ? T.unknownProvider : provider);
  function money(text, currency) {
    const amount = Number(text);
    if (!T.money.grouped) return `${currency || ""} ${amount.toFixed(2)}`.trim();
    const digits = Math.abs(amount).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    const sign = amount < 0 ? "-" : "";
    const symbol = (T.money.symbols || {})[currency];
    if (symbol) return `${sign}${symbol}${digits}`;
    return currency ? `${currency} ${sign}${digits}` : `${sign}${digits}`;
  }
  const dayFormat = new Intl.DateTimeFormat(T.locale, { year: "numeric", month: "long", day: "numeric", timeZone: "UTC" });
  // A calendar day "2026-12-04": as it is in English, "2026年12月4日" in Chinese.
  const day = (text) => (T.localDates ? dayFormat.format(new Date(`${text}T00:00:00Z`)) : text);
  const percent = (text) => (text === null || text === undefined ? "–" : `${Number(text).toFixed(2)}%`);

  async function getJson(url, params) {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(`${url}?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try {
      body = await response.json();
    } catch (_notJson) {
      throw new Error(`HTTP ${response.status}`);
    }
    if (!response.ok || !body.success) throw new Error(failureReason(response.status, body.error));
    return body.data;
  }

  // What a panel says when its API fails: the missing table for a broken schema (the banner above
  // has the repair), else the API's own message.
  function failureReason(status, error) {
    if (!error) return `HTTP ${status}`;
    if (error.code === "schema_unhealthy" && error.missing) {
      return say(T.tableMissing, { missing: error.missing.join(", "), status, code: error.code });
    }
    return error.message;
  }

  // A panel whose API fails (e.g. 503: the table it reads is missing) says so; the others still render.
  function panelUnavailable(panel, error) {
    for (const box of root.querySelectorAll(`.aicost-unavailable[data-panel="${panel}"]`)) {
      box.textContent = say(T.unavailable, { reason: error.message });
      box.hidden = false;
    }
    for (const part of root.querySelectorAll(`[data-needs="${panel}"]`)) part.hidden = true;
    const failed = new Set((root.dataset.failed || "").split(" ").filter(Boolean)).add(panel);
    root.dataset.failed = [...failed].sort().join(" ");
  }

  function panelAvailable(panel) {
    for (const box of root.querySelectorAll(`.aicost-unavailable[data-panel="${panel}"]`)) box.hidden = true;
    // Charts show or hide their own box (drawChart: empty data); the rest comes back here.
    for (const part of root.querySelectorAll(`[data-needs="${panel}"]:not(.aicost-chart)`)) part.hidden = false;
    const failed = (root.dataset.failed || "").split(" ").filter((name) => name && name !== panel);
    if (failed.length) root.dataset.failed = failed.join(" ");
    else delete root.dataset.failed;
  }

  // Loads one panel; its failure is shown on that panel only.
  function loadPanel(panel, load) {
    return load().then(() => panelAvailable(panel), (error) => panelUnavailable(panel, error));
  }

  function setValue(testid, raw, text) {
    const element = q(testid);
    element.dataset.value = raw;
    element.textContent = text;
  }

  function drawChart(key, canvas, config, empty) {
    if (charts[key]) charts[key].destroy();
    canvas.hidden = empty;
    canvas.parentElement.hidden = empty;
    if (!empty) charts[key] = new Chart(canvas, config);
  }

  // "N calls unconverted (no exchange rate)": priced calls whose cost has no rate into the reporting
  // currency yet; they are left out of every total, never counted as 0.
  const unconvertedText = (count) => say(count === 1 ? T.unconverted.one : T.unconverted.other, { count: integer(count) });

  function budgetCell(model) {
    if (model.monthly_budget === null) return `<span class="aicost-muted">${T.noBudget}</span>`;
    if (model.budget_convertible === false) {
      const budget = money(model.monthly_budget, model.budget_currency);
      return `<span class="aicost-error" data-field="budget-no-rate">${say(T.budgetNoRate, { budget, currency: model.reporting_currency })}</span>`;
    }
    const used = Number(model.budget_used_percent);
    const level = used >= 100 ? "over" : used >= 80 ? "warn" : "";
    const width = Math.min(used, 100);
    return `<span class="aicost-bar ${level}" title="${percent(model.budget_used_percent)}"><span style="width:${width}%"></span></span> ` +
      say(T.budgetUse, { percent: percent(model.budget_used_percent), budget: money(model.monthly_budget, model.budget_currency) });
  }

  function costCell(model) {
    if (model.currency === null) return `<span class="aicost-muted">${T.unpriced}</span>`;
    const unpriced = model.unpriced_calls > 0
      ? ` <span class="aicost-muted">${say(T.plusUnpriced, { count: integer(model.unpriced_calls) })}</span>`
      : "";
    return money(model.cost, model.currency) + unpriced;
  }

  // The model's cost in the reporting currency: the figure the totals add up.
  function reportingCostCell(model) {
    if (model.currency === null) return `<span class="aicost-muted">${T.unpriced}</span>`;
    const unconverted = model.unconverted_calls > 0
      ? ` <span class="aicost-muted" data-field="unconverted">${say(T.plusUnconverted, { count: integer(model.unconverted_calls) })}</span>`
      : "";
    return money(model.reporting_cost, model.reporting_currency) + unconverted;
  }

  function renderModels(data) {
    const body = q("models-table").querySelector("tbody");
    body.replaceChildren();
    for (const model of data.platforms) {
      const row = document.createElement("tr");
      row.dataset.model = model.model_name;
      row.innerHTML =
        `<td></td><td></td><td class="num" data-field="calls">${integer(model.calls)}</td>` +
        `<td class="num">${percent(model.success_rate)}</td>` +
        `<td class="num">${integer(model.prompt_tokens)} / ${integer(model.completion_tokens)}</td>` +
        `<td class="num">${model.avg_response_time === null ? "–" : say(T.seconds, { seconds: model.avg_response_time })}</td>` +
        `<td class="num" data-field="cost" data-value="${model.cost}">${costCell(model)}</td>` +
        `<td class="num" data-field="reporting-cost" data-value="${model.reporting_cost}">${reportingCostCell(model)}</td>` +
        `<td class="num">${percent(model.cost_share)}</td><td class="budget">${budgetCell(model)}</td>`;
      row.cells[0].textContent = model.display_name;
      row.cells[1].textContent = providerName(model.provider);
      body.appendChild(row);
    }
    q("models-empty").hidden = data.platforms.length > 0;
  }

  // The legend names each provider with its cost: "OpenAI USD 12.34".
  const providerLabel = (p) => `${providerName(p.provider)} ${money(p.cost, p.currency)}`;

  function renderProviders(data) {
    const providers = data.providers.filter((p) => Number(p.cost) > 0);
    drawChart("providers", document.getElementById("provider-chart"), {
      type: "doughnut",
      data: { labels: providers.map(providerLabel), datasets: [{ data: providers.map((p) => Number(p.cost)) }] },
      options: { maintainAspectRatio: false, plugins: { legend: { position: "right" } } },
    }, providers.length === 0);
    q("provider-empty").hidden = providers.length > 0;
  }

  // The latest stats answer (or its failure): the trend stacks the range's costliest models.
  let statsLoaded = Promise.resolve(null);

  async function loadStats() {
    const range = document.getElementById("time-range").value;
    statsLoaded = getJson(root.dataset.statsUrl, { time_range: range });
    const data = await statsLoaded;
    const s = data.summary;
    q("range-label").textContent = data.time_label;
    setValue("card-calls", s.total_calls, integer(s.total_calls));
    setValue("card-success-rate", s.success_rate, percent(s.success_rate));
    setValue("card-cost", s.total_cost, money(s.total_cost, s.currency));
    setValue("card-unpriced", s.unpriced_calls, integer(s.unpriced_calls));
    const notice = q("unconverted-notice");
    notice.dataset.value = s.unconverted_calls;
    notice.textContent = s.unconverted_calls > 0 ? unconvertedText(s.unconverted_calls) : "";
    notice.hidden = !(s.unconverted_calls > 0);
    root.dataset.loadedRange = data.time_range;
    renderModels(data);
    renderProviders(data);
  }

  const STACKED_MODELS = 5;

  // The trend stacked by model: the trend's STACKED_MODELS costliest models over its days and the rest
  // together ("other"), from the trend's group_by=model answer, whose series add up to each day's cost.
  // The models are labelled with their display names from the stats (their model names without them).
  // Without the breakdown (its request failed) the chart is the total alone.
  async function modelDatasets(days, total) {
    let stats = null;
    try {
      stats = await statsLoaded;
    } catch (_statsFailed) {
      stats = null;
    }
    let grouped = null;
    try {
      grouped = await getJson(root.dataset.trendUrl, { days, group_by: "model", limit: STACKED_MODELS });
    } catch (_groupsFailed) {
      grouped = { series: [] }; // The total alone still shows.
    }
    const names = new Map((stats ? stats.platforms : []).map((p) => [p.model_name, p.display_name]));
    const datasets = grouped.series.filter((series) => Number(series.cost) > 0).map((series) => ({
      label: series.other ? T.otherModels : names.get(series.key) || series.key,
      model: series.other ? "" : series.key,
      data: series.daily.map((d) => Number(d.cost)),
    }));
    if (!datasets.length) return [{ label: say(T.costOf, { currency: total.summary.currency }), data: total.daily_trend.map((d) => Number(d.cost)) }];
    return datasets;
  }

  let trendRequests = 0;

  async function loadTrend(days) {
    const request = ++trendRequests; // A later range's answer wins over an earlier one still loading.
    const data = await getJson(root.dataset.trendUrl, { days });
    const hasData = data.daily_trend.some((d) => d.calls > 0);
    const datasets = hasData ? await modelDatasets(days, data) : [];
    if (request !== trendRequests) return;
    drawChart("trend", document.getElementById("trend-chart"), {
      type: "bar",
      data: { labels: data.daily_trend.map((d) => day(d.date)), datasets },
      options: {
        maintainAspectRatio: false,
        scales: { x: { stacked: true }, y: { stacked: true } },
        plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
      },
    }, !hasData);
    q("trend-empty").hidden = hasData;
    const summary = q("trend-summary");
    summary.dataset.totalCost = data.summary.total_cost;
    summary.textContent = say(T.trendSummary, {
      days: data.days,
      total: money(data.summary.total_cost, data.summary.currency),
      average: money(data.summary.avg_daily_cost, data.summary.currency),
      highest: money(data.summary.max_daily_cost, data.summary.currency),
    }) + (data.summary.unconverted_calls > 0 ? ` ${unconvertedText(data.summary.unconverted_calls)}` : "");
    summary.dataset.unconverted = data.summary.unconverted_calls;
    root.dataset.loadedDays = String(data.days);
  }

  // Top users and top purposes: the stats API's group_by (cost in the reporting currency). The group of
  // calls without a user id (or purpose) has the key null: it is not a user, so it is not listed.
  async function loadGroups(groupBy) {
    const panel = root.querySelector(`[data-group-panel="${groupBy}"]`);
    const range = document.getElementById("time-range").value;
    let data = null;
    try {
      data = await getJson(root.dataset.statsUrl, { time_range: range, group_by: groupBy, limit: 10 });
    } catch (_statsFailed) {
      // The stats API failed (the stats panels say why, e.g. a missing table): no tables of groups.
      panel.hidden = true;
      panel.dataset.supported = "unknown";
      return;
    }
    const groups = data.groups.filter((group) => group.key !== null);
    panel.hidden = false;
    panel.dataset.supported = "true";
    const table = panel.querySelector("table");
    const tbody = table.querySelector("tbody");
    tbody.replaceChildren();
    for (const group of groups) {
      const tokens = Number(group.prompt_tokens) + Number(group.completion_tokens);
      const row = document.createElement("tr");
      row.dataset.key = String(group.key);
      row.innerHTML = `<td></td><td class="num" data-field="calls">${integer(group.calls)}</td>` +
        `<td class="num" data-field="tokens">${integer(tokens)}</td>` +
        `<td class="num" data-field="cost" data-value="${group.cost}">${money(group.cost, group.currency)}</td>`;
      row.cells[0].textContent = String(group.key);
      tbody.appendChild(row);
    }
    panel.querySelector(".aicost-empty").hidden = groups.length > 0;
    table.hidden = groups.length === 0;
  }

  // The decision lookup: one decision's calls and totals (GET /api/v1/usage/decisions/<id>).
  async function lookUpDecision(decisionId) {
    const error = q("decision-error");
    const result = q("decision-result");
    const url = root.dataset.decisionUrl.replace("__decision__", encodeURIComponent(decisionId));
    try {
      const data = await getJson(url, {});
      error.hidden = true;
      const t = data.totals;
      const totals = q("decision-totals");
      totals.dataset.calls = t.calls;
      totals.dataset.cost = t.reporting_cost;
      totals.textContent = say(T.decisionTotals, {
        calls: integer(t.calls),
        failed: integer(t.failed_calls),
        tokensIn: integer(t.prompt_tokens),
        tokensOut: integer(t.completion_tokens),
        cost: money(t.reporting_cost, t.currency),
      });
      const tbody = q("decision-calls").querySelector("tbody");
      tbody.replaceChildren();
      for (const call of data.calls) {
        const row = document.createElement("tr");
        row.dataset.call = call.id;
        row.innerHTML = `<td></td><td></td><td class="num">${integer(call.prompt_tokens)} / ${integer(call.completion_tokens)}</td>` +
          `<td class="num" data-field="cost">${call.cost === null ? `<span class="aicost-muted">${T.unpriced}</span>` : money(call.cost, call.currency)}</td>` +
          `<td class="num" data-field="reporting-cost">${call.reporting_cost === null ? "–" : money(call.reporting_cost, call.reporting_currency)}</td>` +
          `<td>${call.success ? "✓" : "✗"}</td>`;
        row.cells[0].textContent = new Date(call.timestamp).toLocaleString(T.locale);
        row.cells[1].textContent = call.model_name;
        tbody.appendChild(row);
      }
      result.hidden = false;
      root.dataset.decision = data.decision_id;
    } catch (failure) {
      result.hidden = true;
      error.textContent = failure.message;
      error.hidden = false;
      root.dataset.decision = "";
    }
    root.dataset.decisionLoaded = String(Number(root.dataset.decisionLoaded || 0) + 1);
  }

  async function loadAlerts() {
    const data = await getJson(root.dataset.alertsUrl, { is_resolved: "false", limit: 10 });
    const list = q("alerts");
    list.replaceChildren();
    for (const alert of data.results) {
      const item = document.createElement("li");
      item.className = alert.alert_level;
      item.textContent = alert.message;
      list.appendChild(item);
    }
    q("alerts-empty").hidden = data.results.length > 0;
  }

  // The cards and the chart show the same time range: the chart's calendar days of the range (all
  // time: the trend's longest, 366 days), and the day buttons choose the range of that many days.
  const RANGE_DAYS = { today: 1, "24h": 2, "7d": 7, "30d": 30, "90d": 90, all: 366 };
  const DAYS_RANGE = { 7: "7d", 30: "30d", 90: "90d" };
  function rangeDays(range) {
    if (range === "month") return new Date().getDate();
    return RANGE_DAYS[range] || 30;
  }

  function loadRange() {
    const range = document.getElementById("time-range").value;
    const days = rangeDays(range);
    root.querySelectorAll(".aicost-switch button").forEach((b) => b.classList.toggle("selected", b.dataset.days === String(days)));
    const stats = loadPanel("stats", loadStats);
    return Promise.all([
      stats,
      loadPanel("trend", () => loadTrend(days)),
      loadPanel("groups-user_id", () => loadGroups("user_id")),
      loadPanel("groups-purpose", () => loadGroups("purpose")),
    ]);
  }

  document.getElementById("time-range").addEventListener("change", loadRange);
  for (const button of root.querySelectorAll(".aicost-switch button")) {
    button.addEventListener("click", () => {
      document.getElementById("time-range").value = DAYS_RANGE[button.dataset.days];
      loadRange();
    });
  }
  q("decision-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const decisionId = q("decision-id").value.trim();
    if (decisionId) lookUpDecision(decisionId);
  });
  Promise.all([loadRange(), loadPanel("alerts", loadAlerts)]).then(() => { root.dataset.ready = "true"; });
})();
