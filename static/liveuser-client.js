/* LiveUser client: shows how many people are on this site right now.
 * No dependencies, one global (window.LiveUser). The loader (/liveuser.js) prepends the page's
 * configuration and calls LiveUser.init(config); pages may also call it themselves. */
(function () {
  "use strict";

  // Loading the script twice must not open a second connection: the first copy stays in charge.
  if (window.LiveUser) {
    return;
  }

  var DEFAULTS = {
    siteId: "default-site",
    serverUrl: "",
    displayElementId: "liveuser",
    totalCountElementId: "liveuser_totalvisits",
    enableTotalCount: false,
    reconnectDelay: 3000,
    heartbeatInterval: 30000,
    debug: false,
    // Count every tab, as the original does, instead of every browser.
    countTabs: false,
    // "auto" (this page's path) or a page name: also show how many read this page.
    page: null,
    pageElementId: "liveuser_page",
    // "auto" (a WebSocket, or an EventSource stream where sockets cannot open), "websocket"
    // or "sse".
    transport: "auto"
  };
  // The close code with which the tab holding a shared connection hands its presence over.
  var HANDOVER_CLOSE = 4001;
  var MAX_RECONNECT_DELAY = 60000;
  // A connection that stayed up this long resets the backoff.
  var HEALTHY_AFTER = 10000;
  // A burst of URL changes (an app booting, replaceState on every keystroke) is one move.
  var MOVE_DEBOUNCE = 300;
  // The service makes one move every two seconds at most (a sooner one waits there for the
  // next heartbeat): moves are spaced a little wider here, so network jitter never makes one
  // wait.
  var MOVE_INTERVAL = 2500;
  var MAX_PAGE_LENGTH = 256;
  // Sockets that closed before ever opening, this many times, mean a network that blocks them.
  var SOCKET_FAILURES_BEFORE_SSE = 2;

  var config = null;
  var socket = null;
  var clientId = null;
  var visitCounted = false;
  var attempt = 0;
  var openedAt = 0;
  var heartbeatTimer = null;
  var reconnectTimer = null;
  var last = { count: null, totalCount: null, pageCount: undefined };
  // The page this connection is counted on, and a move waiting for its turn.
  var sentPage = null;
  var moveTimer = null;
  var lastMoveAt = 0;
  // The SSE fallback: the stream, the session the service gave it, and failed socket opens.
  var stream = null;
  var session = null;
  var socketFailures = 0;
  // Tabs of this browser on this site share one connection (unless countTabs): the tab that
  // holds a Web Lock opens the socket and tells the others over a BroadcastChannel.
  var tabs = null;
  // The presence the service gave this page's connection, named again when it reconnects, and
  // when the connection ended.
  var presenceToken = null;
  var closedAt = 0;
  // Why the service refuses this site for good (`unknown_site`), once it said so.
  var refused = null;

  function log() {
    if (config && config.debug && window.console) {
      console.log.apply(console, ["[LiveUser]"].concat([].slice.call(arguments)));
    }
  }

  function merge(defaults, given) {
    var out = {};
    Object.keys(defaults).forEach(function (key) {
      out[key] = given && given[key] !== undefined ? given[key] : defaults[key];
    });
    return out;
  }

  // 999 -> "999", 1234 -> "1.2K", 3456789 -> "3.5M" (as the original shows them). Numbers that
  // would round up to "1000K" are shown as "1M".
  function formatNumber(n) {
    if (n >= 999950) {
      return (n / 1000000).toFixed(1).replace(/\.0$/, "") + "M";
    }
    if (n >= 1000) {
      return (n / 1000).toFixed(1).replace(/\.0$/, "") + "K";
    }
    return String(n);
  }

  function element(id) {
    return id ? document.getElementById(id) : null;
  }

  // Screen readers announce changes without interrupting.
  function prepare(el) {
    if (el && !el.hasAttribute("aria-live")) {
      el.setAttribute("aria-live", "polite");
    }
  }

  function showStatus(text) {
    var el = element(config.displayElementId);
    if (el && last.count === null) {
      el.textContent = text;
    }
  }

  function render() {
    var countEl = element(config.displayElementId);
    var totalEl = element(config.totalCountElementId);
    if (countEl && last.count !== null) {
      showCount(countEl, last.count, last.belowMin, "data-live-count");
    }
    if (totalEl && config.enableTotalCount && last.totalCount !== null) {
      totalEl.textContent = formatNumber(last.totalCount);
      totalEl.setAttribute("data-total-count", String(last.totalCount));
    }
    renderPage();
  }

  // A page beyond the site's busiest pages has no count (null): say so rather than guess.
  function renderPage() {
    var pageEl = element(config.pageElementId);
    if (!pageEl || !config.page || last.pageCount === undefined) {
      return;
    }
    if (last.pageCount === null) {
      pageEl.textContent = "\u2013";
      pageEl.setAttribute("data-page-count", "");
      pageEl.title = "Not counted: this site has too many pages with readers";
    } else {
      showCount(pageEl, last.pageCount, last.pageBelowMin, "data-page-count");
      pageEl.removeAttribute("title");
    }
  }

  // A count below the site's privacy floor arrives as the floor with a flag: the exact number
  // is not known here, so say "fewer than" rather than show the floor as if it were the count.
  function showCount(el, count, belowMin, attribute) {
    el.textContent = belowMin ? "fewer than " + formatNumber(count) : formatNumber(count);
    el.setAttribute(attribute, belowMin ? "<" + count : String(count));
  }

  function announce() {
    var detail = { count: last.count, totalCount: last.totalCount };
    if (last.belowMin) {
      detail.belowMin = true;
    }
    if (config.page) {
      detail.pageCount = last.pageCount === undefined ? null : last.pageCount;
      if (last.pageBelowMin) {
        detail.pageBelowMin = true;
      }
    }
    document.dispatchEvent(new CustomEvent("liveuser:update", { detail: detail }));
  }

  function onMessage(event) {
    var message;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      log("ignoring a message that is not JSON");
      return;
    }
    // The site's count and the page's are ordered apart: a move's reply carries the new page's
    // first count from a snapshot older than the site's count already shown.
    var update = message.type === "update";
    var staleSite = update && isOlder(message.slot, "slot");
    var stalePage = update && "pageCount" in message && isOlder(message.slot, "pageSlot");
    if (update && !staleSite && typeof message.count === "number") {
      last.count = message.count;
      last.belowMin = message.belowMin === true;
    }
    if (!staleSite && typeof message.totalCount === "number") {
      last.totalCount = message.totalCount;
    }
    // Only updates on the page's own channel carry pageCount; the site's carry none.
    if (update && !stalePage && "pageCount" in message) {
      last.pageCount = typeof message.pageCount === "number" ? message.pageCount : null;
      last.pageBelowMin = message.pageBelowMin === true;
    }
    if (message.type === "handover") {
      presenceToken = message.token;
      if (tabs) {
        tabs.token = message.token;
      }
    }
    if (message.type === "update" || typeof message.totalCount === "number") {
      render();
      announce();
      tellTabs(null);
    }
  }

  // Each broadcast names the slot it counted for, and broadcasts from different places can
  // arrive out of order: a count from an earlier slot than the one shown (in `last[field]`) is
  // stale. (Counts of one slot on the site's and the page's channels are both taken.)
  function isOlder(slot, field) {
    if (typeof slot !== "number") {
      return false;
    }
    if (typeof last[field] === "number" && slot < last[field]) {
      return true;
    }
    last[field] = slot;
    return false;
  }

  function send(message) {
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify(message));
    }
  }

  function heartbeat() {
    send({ type: "heartbeat", siteId: config.siteId, clientId: clientId, timestamp: Date.now() });
  }

  function socketUrl() {
    return config.serverUrl.replace(/\/+$/, "") + "/ws?" + connectParams().join("&");
  }

  // The socket's parameters (a stream takes the same).
  function connectParams() {
    var params = [
      "siteId=" + encodeURIComponent(config.siteId),
      "clientId=" + encodeURIComponent(clientId),
      "enableTotalCount=" + (config.enableTotalCount ? "true" : "false"),
      // Only the first connection of a page view is a visit; reconnects are not.
      "visit=" + (visitCounted ? "0" : "1")
    ];
    sentPage = currentPage();
    if (sentPage) {
      params.push("page=" + encodeURIComponent(sentPage));
    }
    if (tabs) {
      params.push("shareTabs=1");
    }
    // Take over the presence this page held before it reconnected (its network dropped, or the
    // place holding its socket died), or the one of the tab that held the connection before:
    // one reader, counted once, with no dip.
    // A presence lasts about one and a half heartbeat intervals without one: after a longer
    // gap it is gone, and the page is a new reader.
    if (closedAt && Date.now() - closedAt > config.heartbeatInterval * 1.5) {
      presenceToken = null;
    }
    var token = tabs ? tabs.token : presenceToken;
    if (token) {
      params.push("handover=" + encodeURIComponent(token));
    }
    return params;
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket || stream || !config || refused) {
      return;
    }
    if (usesStream()) {
      openStream();
      return;
    }
    showStatus(attempt === 0 ? "Connecting..." : "Reconnecting...");
    log("connecting", config.siteId);
    try {
      socket = new WebSocket(socketUrl());
    } catch (e) {
      log("could not open a WebSocket", e);
      socket = null;
      scheduleReconnect();
      return;
    }
    socket.onopen = onOpen;
    socket.onmessage = onMessage;
    socket.onclose = onClose;
  }

  function onOpen() {
    log("connected");
    openedAt = Date.now();
    // The service counted this page view when the socket opened: reconnects are not visits.
    visitCounted = true;
    send({ type: "join", siteId: config.siteId, clientId: clientId });
    // The app may have moved while the socket was connecting.
    onNavigate();
    heartbeatTimer = setInterval(heartbeat, config.heartbeatInterval);
    relayVisits();
  }

  function onClose(event) {
    log("closed", event.code);
    if (!openedAt) {
      socketFailures += 1;
      checkRefused();
    }
    // A close the service sent (any code but 1006, a connection that just dropped) removed the
    // presence: there is nothing to take over.
    if (event.code !== 1006) {
      presenceToken = null;
    }
    closedAt = Date.now();
    socket = null;
    connectionEnded();
    scheduleReconnect();
  }

  // A socket or stream ended: its heartbeats stop, and a connection that lasted resets the
  // backoff.
  function connectionEnded() {
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    if (openedAt && Date.now() - openedAt >= HEALTHY_AFTER) {
      attempt = 0;
    }
    openedAt = 0;
  }

  // Exponential backoff with full jitter, so a restarted server is not hit by every page at once.
  function scheduleReconnect() {
    if (!config || reconnectTimer) {
      return;
    }
    var ceiling = Math.min(MAX_RECONNECT_DELAY, config.reconnectDelay * Math.pow(2, attempt));
    var delay = Math.floor(Math.random() * ceiling);
    attempt += 1;
    log("reconnecting in", delay, "ms");
    reconnectTimer = setTimeout(connect, delay);
  }

  function disconnect(code) {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    clearTimeout(moveTimer);
    moveTimer = null;
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    closeStream();
    if (socket) {
      socket.onclose = null;
      socket.close(code || 1000, "page closed");
      socket = null;
    }
    // Closed on purpose: the service removes the presence, there is nothing to take over.
    presenceToken = null;
  }

  // ---- The SSE fallback ----

  // A stream instead of a socket: when asked, when this browser has no WebSocket, or when
  // sockets keep failing to open (a proxy that blocks them).
  function usesStream() {
    if (config.transport === "websocket") {
      return false;
    }
    return (
      !!window.EventSource &&
      (config.transport === "sse" ||
        !window.WebSocket ||
        socketFailures >= SOCKET_FAILURES_BEFORE_SSE)
    );
  }

  // The service's http(s) origin, from its ws(s) one.
  function httpBase() {
    return config.serverUrl.replace(/\/+$/, "").replace(/^ws/, "http");
  }

  function openStream() {
    showStatus(attempt === 0 ? "Connecting..." : "Reconnecting...");
    log("opening a stream", config.siteId);
    stream = new EventSource(httpBase() + "/sse?" + connectParams().join("&"));
    stream.addEventListener("session", onSession);
    stream.onmessage = onMessage;
    stream.onerror = onStreamError;
  }

  // The stream is held. No heartbeats: while Fanout holds the stream it renews the presence
  // itself, so a tab hidden for long (its timers slowed to once a minute) stays counted. The
  // session is kept for the leave beacon only.
  function onSession(event) {
    try {
      session = JSON.parse(event.data).session;
    } catch (e) {
      return;
    }
    if (!openedAt) {
      openedAt = Date.now();
      visitCounted = true;
      onNavigate();
    }
  }

  // EventSource would reconnect by itself, with the same URL (a second visit): reconnect here.
  function onStreamError() {
    log("stream closed");
    if (!session) {
      checkRefused();
    }
    closeStream();
    connectionEnded();
    scheduleReconnect();
  }

  // Closes the stream, and tells the service the reader left (a beacon survives the page).
  function closeStream() {
    if (!stream) {
      return;
    }
    stream.close();
    stream = null;
    if (session && navigator.sendBeacon) {
      navigator.sendBeacon(httpBase() + "/sse/leave", JSON.stringify({ session: session }));
    }
    session = null;
  }

  // ---- A site the service refuses ----

  // A connection refused before it opened tells the page nothing; the API says why. A site
  // the service does not serve is refused for good: say so, and stop trying.
  function checkRefused() {
    var siteId = config.siteId;
    if (!window.fetch) {
      return;
    }
    fetch(httpBase() + "/api/online/" + encodeURIComponent(siteId))
      .then(function (response) {
        return response.status === 404 ? response.json() : null;
      })
      .then(function (body) {
        if (body && body.error === "unknown_site" && config && config.siteId === siteId) {
          refuse(body.error, body.message);
        }
      })
      .catch(function () {});
  }

  // Shows the refusal where the count would be, and tells the page (`liveuser:error`).
  function refuse(error, message) {
    log("refused:", error);
    disconnect();
    refused = error;
    var el = element(config.displayElementId);
    if (el) {
      el.textContent = "Unknown site";
      el.title = "LiveUser: " + message;
      el.setAttribute("data-live-error", error);
    }
    var detail = { error: error, message: message, siteId: config.siteId };
    window.dispatchEvent(new CustomEvent("liveuser:error", { detail: detail }));
  }

  // ---- The page's own count ----

  // The page this tab is on, as the server should count it (null: the site only). Paths are
  // ASCII already (the browser percent-encodes the rest; a given name is encoded here as
  // the service takes visible ASCII only); very long ones are cut.
  function currentPage() {
    if (!config.page) {
      return null;
    }
    var page = config.page === "auto" ? window.location.pathname : String(config.page);
    page = page.replace(/[^\x21-\x7e]/g, encodeURIComponent);
    return page.slice(0, MAX_PAGE_LENGTH) || "/";
  }

  // A single-page app changed the URL: move this connection's count to the new page (the
  // latest page wins if several moves come at once).
  function onNavigate() {
    if (!config || config.page !== "auto" || !sentPage || currentPage() === sentPage) {
      return;
    }
    clearTimeout(moveTimer);
    var wait = Math.max(MOVE_DEBOUNCE, lastMoveAt + MOVE_INTERVAL - Date.now());
    moveTimer = setTimeout(sendMove, wait);
  }

  function sendMove() {
    moveTimer = null;
    if (stream && !session) {
      // Not held yet: its session will move it (onSession), with a leave for the old page.
      return;
    }
    if (stream) {
      // A stream has no way back to the service: it reopens on the new page.
      closeStream();
      connectionEnded();
      connect();
      return;
    }
    if (!socket || socket.readyState !== 1) {
      // The next connection names the page itself.
      return;
    }
    sentPage = currentPage();
    lastMoveAt = Date.now();
    log("moving to page", sentPage);
    // A new page: its counts start afresh.
    last.pageSlot = undefined;
    send({ type: "page", page: sentPage });
  }

  // pushState and replaceState fire no event: wrap them (once per window) so the move is seen.
  function watchNavigation() {
    ["pushState", "replaceState"].forEach(function (name) {
      var original = window.history[name];
      if (typeof original !== "function" || original.liveUserWrapped) {
        return;
      }
      var wrapped = function () {
        var result = original.apply(this, arguments);
        onNavigate();
        return result;
      };
      wrapped.liveUserWrapped = true;
      window.history[name] = wrapped;
    });
  }

  // ---- Tabs sharing one connection ----

  // Tabs share a connection only when they count the same thing: not when each counts its page.
  function sharesTabs() {
    return (
      !config.countTabs &&
      !config.page &&
      !usesStream() &&
      !!(navigator.locks && window.BroadcastChannel)
    );
  }

  // Either this tab holds the connection (it gets the lock), or it listens to the one that does.
  function joinTabs() {
    var name = ["liveuser", config.serverUrl, config.siteId, config.enableTotalCount].join("|");
    tabs = {
      id: randomId(),
      channel: new BroadcastChannel(name),
      abort: window.AbortController ? new AbortController() : null,
      leading: false,
      release: null,
      followers: {},
      token: null,
      visits: 0
    };
    tabs.channel.onmessage = onTabMessage;
    showStatus("Connecting...");
    sayHello();
    var options = tabs.abort ? { signal: tabs.abort.signal } : {};
    navigator.locks.request(name, options, holdConnection).catch(function () {});
  }

  // Tells the holding tab this one is here (it answers with the count, and relays the visit).
  function sayHello() {
    tabs.channel.postMessage({ kind: "hello", id: tabs.id, visit: !visitCounted });
  }

  // The lock is held as long as the promise is pending: until this tab leaves.
  function holdConnection() {
    return new Promise(function (resolve) {
      if (!tabs) {
        resolve();
        return;
      }
      log("this tab holds the connection");
      tabs.release = resolve;
      tabs.leading = true;
      // The others say hello again, so this tab knows whom it holds the connection for.
      tabs.channel.postMessage({ kind: "leader" });
      connect();
    });
  }

  function onTabMessage(event) {
    var message = event.data || {};
    if (message.kind === "hello" && tabs.leading) {
      tabs.followers[message.id] = true;
      if (message.visit && config.enableTotalCount) {
        tabs.visits += 1;
        relayVisits();
      }
      tellTabs(message.id);
    } else if (message.kind === "bye" && tabs.leading) {
      delete tabs.followers[message.id];
    } else if (message.kind === "leader" && !tabs.leading) {
      sayHello();
    } else if (message.kind === "state" && !tabs.leading) {
      hearState(message);
    }
  }

  // What the holding tab heard, shown here as if this tab had heard it.
  function hearState(message) {
    tabs.token = message.token;
    if (message.to === tabs.id) {
      visitCounted = true;
    }
    if (typeof message.count === "number") {
      last.count = message.count;
      last.belowMin = message.belowMin === true;
      if (typeof message.totalCount === "number") {
        last.totalCount = message.totalCount;
      }
      render();
      announce();
    }
  }

  // The holding tab passes on the count (to every tab, or answers one that said hello).
  function tellTabs(to) {
    if (tabs && tabs.leading) {
      tabs.channel.postMessage({
        kind: "state",
        to: to,
        count: last.count,
        belowMin: last.belowMin,
        totalCount: last.totalCount,
        token: tabs.token
      });
    }
  }

  // Other tabs' page views, counted through this tab's socket once it is open.
  function relayVisits() {
    while (tabs && tabs.visits > 0 && socket && socket.readyState === 1) {
      send({ type: "visit" });
      tabs.visits -= 1;
    }
  }

  // The holding tab hands its presence to the tab that takes over (if any will), and lets
  // go of the lock; any other tab just says goodbye.
  function leaveTabs() {
    if (!tabs) {
      disconnect();
      return;
    }
    if (tabs.leading) {
      disconnect(Object.keys(tabs.followers).length ? HANDOVER_CLOSE : 1000);
      tabs.release();
    } else {
      tabs.channel.postMessage({ kind: "bye", id: tabs.id });
    }
    if (tabs.abort) {
      tabs.abort.abort();
    }
    tabs.channel.close();
    tabs = null;
  }

  // One connection per browser when tabs can share, else one per tab.
  function start() {
    if (sharesTabs()) {
      joinTabs();
    } else {
      connect();
    }
  }

  // Closing on pagehide makes the count drop as the tab goes, and keeps the page eligible for
  // the back/forward cache; pageshow brings it back.
  function onPageHide() {
    log("page hidden");
    leaveTabs();
  }

  function onPageShow(event) {
    if (event.persisted) {
      attempt = 0;
      start();
    }
  }

  // Back online: no point waiting out the backoff.
  function onOnline() {
    if (!socket && !stream && (!tabs || tabs.leading)) {
      attempt = 0;
      connect();
    }
  }

  function randomId() {
    var bytes = new Uint8Array(8);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map
      .call(bytes, function (b) {
        return ("0" + b.toString(16)).slice(-2);
      })
      .join("");
  }

  function init(given) {
    destroy();
    config = merge(DEFAULTS, given);
    clientId = randomId();
    visitCounted = false;
    socketFailures = 0;
    attempt = 0;
    last = { count: null, totalCount: null, pageCount: undefined };
    presenceToken = null;
    closedAt = 0;
    refused = null;
    sentPage = null;
    prepare(element(config.displayElementId));
    prepare(element(config.totalCountElementId));
    prepare(element(config.pageElementId));
    watchNavigation();
    window.addEventListener("popstate", onNavigate);
    window.addEventListener("pagehide", onPageHide);
    window.addEventListener("pageshow", onPageShow);
    window.addEventListener("online", onOnline);
    start();
  }

  function destroy() {
    leaveTabs();
    window.removeEventListener("pagehide", onPageHide);
    window.removeEventListener("pageshow", onPageShow);
    window.removeEventListener("online", onOnline);
    window.removeEventListener("popstate", onNavigate);
    config = null;
  }

  window.LiveUser = {
    init: init,
    destroy: destroy,
    // The configuration in use (a copy), for pages and tests that want to check it.
    config: function () {
      return config ? merge(DEFAULTS, config) : null;
    },
    formatNumber: formatNumber
  };
})();
