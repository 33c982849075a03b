/* The overview's charts, drawn with uPlot from each chart's own table (its rows' data-* attributes):
   the chart and the table cannot disagree, and without JavaScript or uPlot the table is what shows. */
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];

  function aligned(points, workflows, key) {
    var xs = Array.from(new Set(points.map(function (p) { return p.t; }))).sort(function (a, b) { return a - b; });
    var index = new Map(xs.map(function (x, i) { return [x, i]; }));
    var cols = workflows.map(function () { return xs.map(function () { return null; }); });
    points.forEach(function (p) {
      var w = workflows.indexOf(p.workflow);
      if (w >= 0) cols[w][index.get(p.t)] = p[key];
    });
    return [xs].concat(cols);
  }

  function draw(container, data, series, yLabel) {
    if (!window.uPlot || !container || data[0].length === 0) return null;
    var opts = {
      width: Math.max(container.clientWidth, 280), height: 240,
      scales: { x: { time: true } },
      series: [{}].concat(series),
      axes: [{}, { label: yLabel, size: 70 }],
      legend: { live: false }
    };
    return new window.uPlot(opts, data, container);
  }

  function points(chartId, keys) {
    var out = [];
    document.querySelectorAll("#" + chartId + " table tr[data-run-id]").forEach(function (tr) {
      var p = { workflow: tr.getAttribute("data-workflow"), t: parseFloat(tr.getAttribute("data-t")) };
      keys.forEach(function (k) { p[k] = parseFloat(tr.getAttribute("data-" + k)); });
      out.push(p);
    });
    return out;
  }

  function init() {
    if (!document.getElementById("chart-duration")) return;
    var d = { duration: points("chart-duration", ["seconds"]), rows: points("chart-rows", ["read", "kept"]) };
    var names = {};
    d.duration.concat(d.rows).forEach(function (p) { names[p.workflow] = true; });
    var wfs = Object.keys(names).sort();
    var plots = [];
    var dur = document.querySelector('#chart-duration .chart-canvas');
    plots.push(draw(dur, aligned(d.duration || [], wfs, "seconds"), wfs.map(function (w, i) {
      return { label: w, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, points: { show: true, size: 6 } };
    }), "seconds"));
    var rows = document.querySelector('#chart-rows .chart-canvas');
    var read = aligned(d.rows || [], wfs, "read"), kept = aligned(d.rows || [], wfs, "kept");
    var series = [];
    wfs.forEach(function (w, i) {
      var c = COLORS[i % COLORS.length];
      series.push({ label: w + " read", stroke: c, width: 2, spanGaps: true, points: { show: true, size: 5 } });
      series.push({ label: w + " kept", stroke: c, width: 1, dash: [6, 4], spanGaps: true, points: { show: true, size: 4 } });
    });
    var both = [read[0]];
    for (var i = 1; i < read.length; i++) { both.push(read[i]); both.push(kept[i]); }
    plots.push(draw(rows, both, series, "rows"));
    window.addEventListener("resize", function () {
      plots.forEach(function (p) {
        if (p && p.root && p.root.parentNode) p.setSize({ width: Math.max(p.root.parentNode.clientWidth, 280), height: 240 });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
