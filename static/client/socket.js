// The WebSocket: its parameters, opening, closing and reconnecting.

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
  setStatus(attempt === 0 ? "connecting" : "reconnecting");
  showStatus(attempt === 0 ? "connecting" : "reconnecting");
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
  setStatus("live");
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
  setStatus("reconnecting");
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
