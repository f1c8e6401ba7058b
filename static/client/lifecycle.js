// A widget's lifecycle: one widget counts one site (see sites.js for the global).

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

// Back online: no point waiting out the backoff (an idle tab waits to be shown).
function onOnline() {
  if (!socket && !stream && status !== "idle" && (!tabs || tabs.leading)) {
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
  // No status yet: the connection's first step says "connecting" (an event, like every
  // change after it).
  status = null;
  statusReason = null;
  watchNavigation();
  window.addEventListener("popstate", onNavigate);
  window.addEventListener("hashchange", onNavigate);
  window.addEventListener("liveuser:navigate", onNavigate);
  window.addEventListener("pagehide", onPageHide);
  window.addEventListener("pageshow", onPageShow);
  window.addEventListener("online", onOnline);
  document.addEventListener("visibilitychange", onVisibility);
  start();
  // A tab opened in the background is hidden from the start.
  onVisibility();
}

function destroy() {
  leaveTabs();
  stopAnnouncing();
  window.removeEventListener("pagehide", onPageHide);
  window.removeEventListener("pageshow", onPageShow);
  window.removeEventListener("online", onOnline);
  document.removeEventListener("visibilitychange", onVisibility);
  clearTimeout(idleTimer);
  window.removeEventListener("popstate", onNavigate);
  window.removeEventListener("hashchange", onNavigate);
  window.removeEventListener("liveuser:navigate", onNavigate);
  config = null;
}

// What the global hands out for this widget (see sites.js).
var api = {
  init: init,
  destroy: destroy,
  // The configuration in use (a copy), for pages and tests that want to check it.
  config: function () {
    return config ? merge(DEFAULTS, config) : null;
  },
  formatNumber: formatNumber,
  // The last state (counts, floor, status), and every change of it.
  state: currentState,
  subscribe: subscribe
};
