/* The demo page's chart of the last 24 hours: the peak of each minute, drawn as an inline SVG
 * from /api/history (no library), with today's peak. Redrawn every minute, and soon after a
 * count changes. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 720;
  var HEIGHT = 120;

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
      var x = (i / Math.max(1, points.length - 1)) * WIDTH;
      var y = HEIGHT - (value / top) * (HEIGHT - 10);
      run.push([x, y]);
    });
    if (run.length) runs.push(run);
    return runs;
  }

  function draw(chart, history) {
    var points = history.points || [];
    var top = Math.max(1, history.peak || 0);
    while (chart.firstChild) {
      chart.removeChild(chart.firstChild);
    }
    lines(points, top).forEach(function (run) {
      // A lone minute still shows, as a short dash ending at it.
      if (run.length === 1) {
        run = [[Math.max(0, run[0][0] - 6), run[0][1]], run[0]];
      }
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute(
        "points",
        run
          .map(function (p) {
            return p[0].toFixed(1) + "," + p[1].toFixed(1);
          })
          .join(" ")
      );
      chart.appendChild(line);
    });
    chart.setAttribute("data-points", String(points.length));
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
