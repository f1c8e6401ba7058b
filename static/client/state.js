// LiveUser client: shows how many people are on this site right now. No dependencies, one
// global (window.LiveUser). The service serves these files as one script, in the order
// src/surfaces/client.rs lists them: all but the last inside one function, `widget()`, which
// makes one site's widget (so each has the state below of its own); the last, sites.js, the
// global over them. /liveuser.js then calls LiveUser.init(config) with the page's settings.
//
// This file: the defaults, the limits, and the state of one widget's connection.

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
  transport: "auto",
  // Path patterns ("/users/*") whose pages count as one page, named by the pattern.
  pageGroups: [],
  // The language numbers and words are written in (default: the page's), and the page's own
  // words for any of WORDS (see words.js).
  lang: null,
  texts: {},
  // Screen readers: seconds between announcements of the count (0: none, the default).
  announce: 0,
  // Show only in elements that name this site (the widget of a second site on the page).
  namedOnly: false,
  // False: a tab hidden for longer than idleAfter seconds stops counting (see idle.js).
  countIdle: true,
  idleAfter: 300
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
