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
    debug: false
  };
  var MAX_RECONNECT_DELAY = 60000;
  // A connection that stayed up this long resets the backoff.
  var HEALTHY_AFTER = 10000;

  var config = null;
  var socket = null;
  var clientId = null;
  var visitCounted = false;
  var attempt = 0;
  var openedAt = 0;
  var heartbeatTimer = null;
  var reconnectTimer = null;
  var last = { count: null, totalCount: null };

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
      countEl.textContent = formatNumber(last.count);
      countEl.setAttribute("data-live-count", String(last.count));
    }
    if (totalEl && config.enableTotalCount && last.totalCount !== null) {
      totalEl.textContent = formatNumber(last.totalCount);
      totalEl.setAttribute("data-total-count", String(last.totalCount));
    }
  }

  function announce() {
    var detail = { count: last.count, totalCount: last.totalCount };
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
    if (message.type === "update" && typeof message.count === "number") {
      last.count = message.count;
    }
    if (typeof message.totalCount === "number") {
      last.totalCount = message.totalCount;
    }
    if (message.type === "update" || typeof message.totalCount === "number") {
      render();
      announce();
    }
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
    var params = [
      "siteId=" + encodeURIComponent(config.siteId),
      "clientId=" + encodeURIComponent(clientId),
      "enableTotalCount=" + (config.enableTotalCount ? "true" : "false"),
      // Only the first connection of a page view is a visit; reconnects are not.
      "visit=" + (visitCounted ? "0" : "1")
    ];
    return config.serverUrl.replace(/\/+$/, "") + "/ws?" + params.join("&");
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (socket || !config) {
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
    visitCounted = true;
    socket.onopen = onOpen;
    socket.onmessage = onMessage;
    socket.onclose = onClose;
  }

  function onOpen() {
    log("connected");
    openedAt = Date.now();
    send({ type: "join", siteId: config.siteId, clientId: clientId });
    heartbeatTimer = setInterval(heartbeat, config.heartbeatInterval);
  }

  function onClose(event) {
    log("closed", event.code);
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    socket = null;
    if (openedAt && Date.now() - openedAt >= HEALTHY_AFTER) {
      attempt = 0;
    }
    openedAt = 0;
    scheduleReconnect();
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

  function disconnect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, "page closed");
      socket = null;
    }
  }

  // Closing on pagehide makes the count drop as the tab goes, and keeps the page eligible for
  // the back/forward cache; pageshow brings it back.
  function onPageHide() {
    log("page hidden");
    disconnect();
  }

  function onPageShow(event) {
    if (event.persisted) {
      attempt = 0;
      connect();
    }
  }

  // Back online: no point waiting out the backoff.
  function onOnline() {
    if (!socket) {
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
    attempt = 0;
    last = { count: null, totalCount: null };
    prepare(element(config.displayElementId));
    prepare(element(config.totalCountElementId));
    window.addEventListener("pagehide", onPageHide);
    window.addEventListener("pageshow", onPageShow);
    window.addEventListener("online", onOnline);
    connect();
  }

  function destroy() {
    disconnect();
    window.removeEventListener("pagehide", onPageHide);
    window.removeEventListener("pageshow", onPageShow);
    window.removeEventListener("online", onOnline);
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
