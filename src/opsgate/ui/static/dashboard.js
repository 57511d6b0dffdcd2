// opsgate dashboard: draws the overview charts (uPlot) from the JSON the server embeds, and
// wires two small behaviours (confirm before revoking, copy a new key). No inline script, so
// the page runs under a strict Content-Security-Policy.
(function () {
  "use strict";

  var PALETTE = ["#3559e0", "#e07b35", "#c8322d", "#1f8a4c", "#8a4fd8", "#1c6c80"];
  var charts = [];

  function chartData(sourceId) {
    var el = document.getElementById(sourceId);
    return el ? JSON.parse(el.textContent) : null;
  }

  // Dollars as the server's `usd` filter prints them (ui/render.py): six places under a cent
  // ($0.000030), otherwise at least two and up to six, never rounded away.
  function usd(v) {
    if (Math.abs(v) < 0.01) return "$" + v.toFixed(6);
    var text = v.toFixed(6).replace(/0+$/, "");
    var places = Math.max(2, (text.split(".")[1] || "").length);
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places });
  }

  function formatValue(unit) {
    return function (u, v) {
      if (v == null) return "–";
      if (unit === "USD") return usd(v);
      if (unit === "%") return v.toFixed(1) + "%";
      if (unit === "ms") return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(0) + " ms";
      return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString() : String(+v.toFixed(2));
    };
  }

  function draw(el, data, spec) {
    var width = Math.max(el.clientWidth, 280);
    var fmt = formatValue(spec.unit);
    var series = [data.x_label ? { label: data.x_label } : {}];
    var columns = [data.x];
    spec.series.forEach(function (s, i) {
      var color = PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: color,
        width: 2,
        fill: spec.series.length === 1 ? color + "22" : undefined,
        spanGaps: false,
        points: { show: data.x.length < 40 },
        value: fmt,
      });
      columns.push(s.values);
    });
    var opts = {
      width: width,
      height: 220,
      series: series,
      scales: { x: { time: data.time !== false }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [{}, { size: 64, values: function (u, ticks) { return ticks.map(function (t) { return fmt(u, t); }); } }],
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    el.textContent = "";
    var plot = new uPlot(opts, columns, el);
    plot.opsgateChart = spec.id;
    el.dataset.points = String(spec.series.reduce(function (n, s) {
      return n + s.values.filter(function (v) { return v != null && v !== 0; }).length;
    }, 0));
    charts.push({ el: el, plot: plot });
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    charts = charts.filter(function (c) { return c.el.isConnected; }); // swapped out by htmx
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      var data = chartData(el.dataset.source);
      if (!data) return;
      var spec = data.charts.find(function (c) { return c.id === el.dataset.chart; });
      if (spec) draw(el, data, spec);
    });
  }

  function resize() {
    charts.forEach(function (c) {
      c.plot.setSize({ width: Math.max(c.el.clientWidth, 280), height: 220 });
    });
  }

  document.addEventListener("submit", function (event) {
    var button = event.submitter || event.target.querySelector("[data-confirm]");
    var question = button && button.dataset ? button.dataset.confirm : null;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.getElementById(button.dataset.copy);
    input.select();
    if (navigator.clipboard) navigator.clipboard.writeText(input.value);
    button.textContent = "Copied";
  });

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
  var pending;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(resize, 150);
  });
})();
