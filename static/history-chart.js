/* The demo page's chart of the last 24 hours: the peak of each minute, drawn as an inline SVG
 * from /api/history (no library), with its axes (readers, hours ago), today's peak, and a word
 * when nobody has been here yet. Redrawn every minute, and soon after a count changes. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  // The drawing's size, and the room its axis labels take on the left and at the bottom.
  var WIDTH = 720;
  var HEIGHT = 150;
  var LEFT = 36;
  var BOTTOM = 20;
  var PLOT_W = WIDTH - LEFT - 8;
  var PLOT_H = HEIGHT - BOTTOM - 10;

  function x(i, n) {
    return LEFT + (i / Math.max(1, n - 1)) * PLOT_W;
  }

  function y(value, top) {
    return 10 + PLOT_H - (value / top) * PLOT_H;
  }

  // Consecutive known points make one line; a gap (no data) breaks it.
  function lines(points, top) {
    var runs = [];
    var run = [];
    points.forEach(function (value, i) {
      if (value === null) {
        if (run.length) runs.push(run);
        run = [];
        return;
      }
      run.push([x(i, points.length), y(value, top)]);
    });
    if (run.length) runs.push(run);
    return runs;
  }

  function add(chart, name, attributes, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) {
      el.setAttribute(key, attributes[key]);
    });
    if (text !== undefined) {
      el.textContent = text;
    }
    chart.appendChild(el);
    return el;
  }

  // The axes: readers (0 and the peak) up the left, hours ago along the bottom.
  function axes(chart, top) {
    var base = y(0, top);
    add(chart, "line", { class: "axis", x1: LEFT, y1: 10, x2: LEFT, y2: base });
    add(chart, "line", { class: "axis", x1: LEFT, y1: base, x2: LEFT + PLOT_W, y2: base });
    add(chart, "text", { class: "label", x: LEFT - 6, y: base, "text-anchor": "end" }, "0");
    add(chart, "text", { class: "label", x: LEFT - 6, y: 16, "text-anchor": "end" }, String(top));
    [["24 h ago", 0, "start"], ["12 h ago", 0.5, "middle"], ["now", 1, "end"]].forEach(function (tick) {
      var at = LEFT + tick[1] * PLOT_W;
      add(chart, "text", { class: "label", x: at, y: HEIGHT - 4, "text-anchor": tick[2] }, tick[0]);
    });
  }

  function draw(chart, history) {
    var points = history.points || [];
    var top = Math.max(1, history.peak || 0);
    while (chart.firstChild) {
      chart.removeChild(chart.firstChild);
    }
    axes(chart, top);
    var empty = !points.some(function (p) {
      return p > 0;
    });
    if (empty) {
      add(chart, "text", { class: "empty", x: LEFT + PLOT_W / 2, y: 10 + PLOT_H / 2, "text-anchor": "middle" },
        "Nobody here in the last 24 hours yet");
    }
    lines(points, top).forEach(function (run) {
      // A lone minute still shows, as a short dash ending at it.
      if (run.length === 1) {
        run = [[Math.max(LEFT, run[0][0] - 6), run[0][1]], run[0]];
      }
      add(chart, "polyline", {
        points: run
          .map(function (p) {
            return p[0].toFixed(1) + "," + p[1].toFixed(1);
          })
          .join(" ")
      });
    });
    chart.setAttribute("data-points", String(points.length));
    chart.setAttribute("data-empty", String(empty));
  }

  function refresh() {
    var chart = document.getElementById("history-chart");
    var peak = document.getElementById("today-peak");
    if (!chart || !window.fetch) {
      return;
    }
    fetch("/api/history/demo?range=24h")
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (history) {
        if (!history) return;
        draw(chart, history);
        if (peak && typeof history.todayPeak === "number") {
          peak.textContent = String(history.todayPeak);
        }
      })
      .catch(function () {});
  }

  // A new count may be a new peak: redraw, at most every few seconds.
  var pending = null;
  function soon() {
    if (!pending) {
      pending = setTimeout(function () {
        pending = null;
        refresh();
      }, 3000);
    }
  }

  refresh();
  setInterval(refresh, 60000);
  document.addEventListener("liveuser:update", soon);
})();
