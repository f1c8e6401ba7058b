// What a page's own code can read (an app's component mounting after the first count, say):
// LiveUser.state() now, LiveUser.subscribe(fn) for every change (the last state at once), and
// the connection's status as liveuser:status events: "connecting", "live", "reconnecting",
// "idle" (a hidden tab that stopped counting, see idle.js), "refused" (with the reason, such
// as "unknown_site").

var listeners = [];
var status = null;
var statusReason = null;

function currentState() {
  return {
    siteId: config ? config.siteId : null,
    status: status || "connecting",
    reason: statusReason,
    count: last.count,
    belowMin: !!last.belowMin,
    // Below the floor the count is the floor itself: the exact number is not known here.
    floor: last.belowMin ? last.count : null,
    total: last.totalCount,
    page: config && config.page ? sentPage : null,
    pageCount: last.pageCount === undefined ? null : last.pageCount,
    pageBelowMin: !!last.pageBelowMin
  };
}

// Tells every subscriber; one that throws does not stop the others.
function notify() {
  var state = currentState();
  listeners.slice().forEach(function (fn) {
    try {
      fn(state);
    } catch (e) {
      log("a subscriber failed", e);
    }
  });
}

function setStatus(next, reason) {
  reason = reason || null;
  if (status === next && statusReason === reason) {
    return;
  }
  status = next;
  statusReason = reason;
  var detail = { status: next, reason: reason, siteId: config ? config.siteId : null };
  document.dispatchEvent(new CustomEvent("liveuser:status", { detail: detail }));
  notify();
}

function subscribe(fn) {
  listeners.push(fn);
  fn(currentState());
  return function unsubscribe() {
    listeners = listeners.filter(function (other) {
      return other !== fn;
    });
  };
}
