/* The owner's dashboard. It reads the site from its own address and the dashboard key from the
 * fragment (#key=…, which browsers never send: the key reaches no server log), keeps the key in
 * this tab only, asks /data for the first view and a short-lived live link, then follows the
 * site's dashboard channel over server-sent events. Everything it draws is built here: no
 * library, nothing loaded from elsewhere. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var site = decodeURIComponent(location.pathname.split("/")[2] || "");
  var base = "/dashboard/" + encodeURIComponent(site);
  var storageKey = "liveuser-dashboard:" + site;
  var names = {};
  var range = "24h";
  var stream = null;
  var countryNames = window.Intl && Intl.DisplayNames ? new Intl.DisplayNames([navigator.language || "en"], { type: "region" }) : null;

  function $(id) {
    return document.getElementById(id);
  }

  function setState(state, text) {
    document.body.setAttribute("data-state", state);
    $("status").textContent = text;
  }

  // The key from the fragment, once: it then leaves the address bar (and the history).
  function takeKey() {
    var match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (match) {
      try {
        sessionStorage.setItem(storageKey, decodeURIComponent(match[1]));
      } catch (e) {
        // A malformed key ("%" alone) opens nothing: the page asks for one.
        sessionStorage.removeItem(storageKey);
      }
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(storageKey);
  }

  function number(n) {
    return typeof n === "number" ? n.toLocaleString() : "–";
  }

  // A country's flag: its two letters as regional indicator symbols.
  function flag(code) {
    if (!/^[A-Z]{2}$/.test(code)) return "🌐";
    return String.fromCodePoint(0x1f1e6 + code.charCodeAt(0) - 65, 0x1f1e6 + code.charCodeAt(1) - 65);
  }

  function countryName(code) {
    if (code === "other") return "Other";
    try {
      return (countryNames && countryNames.of(code)) || code;
    } catch (e) {
      return code;
    }
  }

  // A ranked list of [label, count] rows, each with a bar scaled to the largest.
  function bars(list, rows, empty) {
    while (list.firstChild) list.removeChild(list.firstChild);
    if (!rows.length) {
      var none = document.createElement("li");
      none.className = "empty";
      none.textContent = empty;
      list.appendChild(none);
      return;
    }
    var top = Math.max.apply(null, rows.map(function (r) { return r[1]; }));
    rows.forEach(function (row) {
      var li = document.createElement("li");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = row[0];
      name.title = row[0];
      var n = document.createElement("span");
      n.className = "n";
      n.textContent = number(row[1]);
      var track = document.createElement("span");
      track.className = "track";
      var fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = (100 * row[1] / Math.max(1, top)).toFixed(1) + "%";
      track.appendChild(fill);
      li.appendChild(name);
      li.appendChild(n);
      li.appendChild(track);
      list.appendChild(li);
    });
  }

  // Pages arrive as ids; their names come with /data. A page not named yet asks for them
  // again, once per page: a page whose name was never kept stays an id, not a poll.
  var renaming = null;
  var asked = {};
  function pageName(id) {
    if (names[id]) return names[id];
    if (!asked[id] && !renaming) {
      asked[id] = true;
      renaming = setTimeout(function () { renaming = null; load(false); }, 5000);
    }
    return "page " + id.slice(0, 8) + "…";
  }

  function render(view) {
    $("count").textContent = number(view.count);
    $("peak").textContent = number(view.peakToday);
    $("total").textContent = number(view.total);
    bars($("countries"), (view.countries || []).map(function (c) {
      return [flag(c[0]) + " " + countryName(c[0]), c[1]];
    }), "Nobody here right now");
    bars($("pages"), (view.pages || []).map(function (p) {
      return [pageName(p[0]), p[1]];
    }), "No page counts yet");
    document.body.setAttribute("data-count", String(view.count));
  }

  // The stream: every broadcast's view. When it ends (a link only opens it for a minute, and
  // a network may drop it), a fresh link is asked for.
  function follow(link) {
    if (stream) stream.close();
    stream = new EventSource(link);
    stream.onopen = function () { setState("live", "Live"); };
    stream.onmessage = function (event) {
      try {
        render(JSON.parse(event.data));
      } catch (e) { /* a message this page cannot read changes nothing */ }
    };
    stream.onerror = function () {
      stream.close();
      stream = null;
      setState("reconnecting", "Reconnecting…");
      setTimeout(function () { load(true); }, 3000);
    };
  }

  // Locked: nothing of the site stays on screen, and nothing more arrives.
  function askForKey(message) {
    if (stream) stream.close();
    stream = null;
    ["count", "peak", "total"].forEach(function (id) { $(id).textContent = "–"; });
    ["countries", "pages"].forEach(function (id) { bars($(id), [], ""); });
    setState("locked", "Locked");
    $("unlock").hidden = false;
    $("unlock-error").textContent = message || "";
  }

  function load(withStream) {
    var key = sessionStorage.getItem(storageKey);
    if (!key) return askForKey();
    fetch(base + "/data", { headers: { Authorization: "Bearer " + key }, cache: "no-store" })
      .then(function (response) {
        return response.json().then(function (body) { return [response.status, body]; });
      })
      .then(function (answer) {
        var status = answer[0], view = answer[1];
        if (status === 401 || status === 404) {
          sessionStorage.removeItem(storageKey);
          return askForKey(view.message || "That key does not open this dashboard.");
        }
        if (status !== 200) throw new Error(view.message || String(status));
        $("unlock").hidden = true;
        names = view.pageNames || {};
        $("countries-note").textContent = view.minCount
          ? "Countries with fewer than " + view.minCount + " readers are counted in Other."
          : "";
        render(view);
        if (withStream) follow(view.live);
      })
      .catch(function () {
        setState("reconnecting", "Reconnecting…");
        setTimeout(function () { load(withStream); }, 5000);
      });
  }

  // The chart: the peak of each interval of the range, from the public history API.
  function chart() {
    fetch("/api/history/" + encodeURIComponent(site) + "?range=" + range, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (h) { if (h) draw(h); })
      .catch(function () {});
  }

  function add(svg, name, attributes, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (k) { el.setAttribute(k, attributes[k]); });
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
  }

  function draw(h) {
    var svg = $("chart"), points = h.points || [], top = Math.max(1, h.peak || 0);
    var left = 40, width = 672, height = 140;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    add(svg, "line", { class: "axis", x1: left, y1: 10, x2: left, y2: 10 + height });
    add(svg, "line", { class: "axis", x1: left, y1: 10 + height, x2: left + width, y2: 10 + height });
    add(svg, "text", { x: left - 6, y: 16, "text-anchor": "end" }, String(top));
    add(svg, "text", { x: left - 6, y: 10 + height, "text-anchor": "end" }, "0");
    var ago = range === "7d" ? ["7 d ago", "now"] : ["24 h ago", "now"];
    add(svg, "text", { x: left, y: 174, "text-anchor": "start" }, ago[0]);
    add(svg, "text", { x: left + width, y: 174, "text-anchor": "end" }, ago[1]);
    var run = [];
    function flush() {
      if (run.length) add(svg, "polyline", { points: run.join(" ") });
      run = [];
    }
    points.forEach(function (p, i) {
      if (p === null) return flush();
      var x = left + (i / Math.max(1, points.length - 1)) * width;
      run.push(x.toFixed(1) + "," + (10 + height - (p / top) * height).toFixed(1));
    });
    flush();
    svg.setAttribute("data-points", String(points.length));
  }

  $("site").textContent = site;
  document.title = "LiveUser · " + site;
  $("unlock").addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(storageKey, $("key").value.trim());
    $("key").value = "";
    load(true);
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-range]"), function (button) {
    button.addEventListener("click", function () {
      range = button.getAttribute("data-range");
      Array.prototype.forEach.call(document.querySelectorAll("[data-range]"), function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
      chart();
    });
  });
  // A link with another key opened in this tab (the same page: no reload) takes effect.
  window.addEventListener("hashchange", function () {
    if (/key=/.test(location.hash)) {
      takeKey();
      load(true);
    }
  });
  takeKey();
  load(true);
  chart();
  setInterval(chart, 60000);
})();
