// A small SVG line chart for CloudWatch series: one line per node, no dependencies.
// chart = {metric, stat, unit, period, series: [{node, points: [[isoTime, value], ...]}]}
"use strict";

const CHART_COLORS = ["#2456d6", "#d6432a", "#1b873f", "#b7791f", "#8a3ab9", "#0f8b8d", "#c2185b", "#5d4037"];

function formatValue(value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (unit === "Bytes") {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(value) >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return `${value.toFixed(i ? 1 : 0)} ${units[i]}`;
  }
  if (unit === "Percent") return `${value.toFixed(1)} %`;
  if (unit === "Seconds") return `${value.toFixed(2)} s`;
  if (Math.abs(value) >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(2);
}

function renderChart(chart) {
  const NS = "http://www.w3.org/2000/svg";
  const perSecond = chart.stat === "Sum";
  const title = perSecond ? `${chart.metric} /s` : chart.metric;
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.metric = chart.metric;
  const heading = document.createElement("h3");
  heading.textContent = title;
  box.append(heading);

  const series = chart.series.map((s) => ({
    node: s.node,
    points: s.points.map(([t, v]) => [Date.parse(t), perSecond ? v / chart.period : v]),
  }));
  const all = series.flatMap((s) => s.points);
  box.dataset.points = String(all.length);
  box.dataset.last = all.length ? new Date(Math.max(...all.map((p) => p[0]))).toISOString() : "";
  const width = 320, height = 130, left = 46, right = 6, top = 6, bottom = 18;
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const text = (x, y, content, anchor) => {
    const t = document.createElementNS(NS, "text");
    t.setAttribute("x", x); t.setAttribute("y", y); t.setAttribute("font-size", "10");
    t.setAttribute("fill", "#6b7385"); t.setAttribute("text-anchor", anchor || "start");
    t.textContent = content;
    svg.append(t);
  };
  const line = (x1, y1, x2, y2) => {
    const l = document.createElementNS(NS, "line");
    l.setAttribute("x1", x1); l.setAttribute("y1", y1); l.setAttribute("x2", x2); l.setAttribute("y2", y2);
    l.setAttribute("stroke", "#dfe3ea");
    svg.append(l);
  };
  if (!all.length) {
    text(width / 2, height / 2, "no data points yet", "middle");
  } else {
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const yMax = Math.max(...ys, chart.unit === "Percent" ? 1 : 0) * 1.1 || 1;
    const sx = (x) => left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - left - right);
    const sy = (y) => top + (1 - y / yMax) * (height - top - bottom);
    line(left, sy(0), width - right, sy(0));
    line(left, sy(yMax / 2), width - right, sy(yMax / 2));
    text(left - 4, sy(yMax) + 8, formatValue(yMax, chart.unit), "end");
    text(left - 4, sy(0), formatValue(0, chart.unit), "end");
    text(left, height - 4, new Date(x0).toLocaleTimeString());
    text(width - right, height - 4, new Date(x1).toLocaleTimeString(), "end");
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const path = document.createElementNS(NS, "polyline");
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", CHART_COLORS[i % CHART_COLORS.length]);
      path.setAttribute("stroke-width", "1.5");
      path.setAttribute("vector-effect", "non-scaling-stroke");
      path.setAttribute("points", s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "));
      svg.append(path);
    });
  }
  box.append(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = CHART_COLORS[i % CHART_COLORS.length];
    const last = s.points.length ? s.points[s.points.length - 1][1] : null;
    item.append(swatch, `${s.node} ${formatValue(last, chart.unit)}`);
    legend.append(item);
  });
  box.append(legend);
  return box;
}

window.renderChart = renderChart;
window.formatValue = formatValue;
