// What the service says: count updates, in order, told to the page.

function announce() {
  var detail = { count: last.count, totalCount: last.totalCount, siteId: config.siteId };
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
  notify();
  announceCount();
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
