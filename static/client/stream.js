// The SSE fallback.

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
  setStatus(attempt === 0 ? "connecting" : "reconnecting");
  showStatus(attempt === 0 ? "connecting" : "reconnecting");
  log("opening a stream", config.siteId);
  stream = new EventSource(httpBase() + "/sse?" + connectParams().join("&"));
  stream.addEventListener("session", onSession);
  stream.onmessage = onMessage;
  stream.onerror = onStreamError;
}

// The stream is held. No heartbeats: while Fanout holds the stream it renews the presence
// itself, so a tab hidden for long (its timers slowed to once a minute) stays counted (unless
// the page asks otherwise: idle.js). The session is kept for the leave beacon only.
function onSession(event) {
  try {
    session = JSON.parse(event.data).session;
  } catch (e) {
    return;
  }
  setStatus("live");
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
