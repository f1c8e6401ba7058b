const LiveUser = (function () {
"use strict";
if (window.LiveUser) {
return window.LiveUser;
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
countTabs: false,
page: null,
pageElementId: "liveuser_page",
transport: "auto",
pageGroups: [],
lang: null,
texts: {},
announce: 0
};
var HANDOVER_CLOSE = 4001;
var MAX_RECONNECT_DELAY = 60000;
var HEALTHY_AFTER = 10000;
var MOVE_DEBOUNCE = 300;
var MOVE_INTERVAL = 2500;
var MAX_PAGE_LENGTH = 256;
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
var sentPage = null;
var moveTimer = null;
var lastMoveAt = 0;
var stream = null;
var session = null;
var socketFailures = 0;
var tabs = null;
var presenceToken = null;
var closedAt = 0;
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
var WORDS = {
connecting: "Connecting...",
reconnecting: "Reconnecting...",
fewerThan: "fewer than {n}",
unknownSite: "Unknown site",
pageNotCounted: "Not among the site's busiest pages",
online: { one: "{n} person here now", other: "{n} people here now" },
announcerLabel: "Readers online"
};
var formatters = {};
function language() {
return (config && config.lang) || document.documentElement.lang || navigator.language || "en";
}
function words(key, n) {
var given = config && config.texts ? config.texts[key] : undefined;
var text = given !== undefined ? given : WORDS[key];
if (text && typeof text === "object") {
text = text[pluralOf(n)] || text.other;
}
return String(text).replace("{n}", n === undefined ? "" : formatNumber(n));
}
function formatterFor(lang) {
if (!formatters[lang]) {
formatters[lang] = {
number: new Intl.NumberFormat(lang, { notation: "compact", maximumFractionDigits: 1 }),
plural: new Intl.PluralRules(lang)
};
}
return formatters[lang];
}
function pluralOf(n) {
try {
return formatterFor(language()).plural.select(n);
} catch (e) {
return n === 1 ? "one" : "other";
}
}
function formatNumber(n) {
try {
return formatterFor(language()).number.format(n);
} catch (e) {
return String(n);
}
}
function element(id) {
return id ? document.getElementById(id) : null;
}
function targets(what, id) {
var found = [];
var el = element(id);
if (el) {
found.push(el);
}
var marked = document.querySelectorAll("[data-liveuser]");
for (var i = 0; i < marked.length; i += 1) {
var site = marked[i].getAttribute("data-liveuser");
var shows = marked[i].getAttribute("data-liveuser-show") || "online";
if (shows === what && (!site || site === config.siteId) && found.indexOf(marked[i]) < 0) {
found.push(marked[i]);
}
}
return found;
}
function showStatus(key) {
if (last.count !== null) {
return;
}
targets("online", config.displayElementId).forEach(function (el) {
el.textContent = words(key);
});
}
function render() {
if (last.count !== null) {
targets("online", config.displayElementId).forEach(function (el) {
showCount(el, last.count, last.belowMin, "data-live-count");
});
}
if (config.enableTotalCount && last.totalCount !== null) {
targets("total", config.totalCountElementId).forEach(function (el) {
el.textContent = formatNumber(last.totalCount);
el.setAttribute("data-total-count", String(last.totalCount));
});
}
renderPage();
}
function renderPage() {
if (!config.page || last.pageCount === undefined) {
return;
}
targets("page", config.pageElementId).forEach(function (el) {
if (last.pageCount === null) {
el.textContent = "\u2013";
el.setAttribute("data-page-count", "");
el.title = words("pageNotCounted");
} else {
showCount(el, last.pageCount, last.pageBelowMin, "data-page-count");
el.removeAttribute("title");
}
});
}
function showCount(el, count, belowMin, attribute) {
el.textContent = belowMin ? words("fewerThan", count) : formatNumber(count);
el.setAttribute(attribute, belowMin ? "<" + count : String(count));
}
var listeners = [];
var status = "connecting";
var statusReason = null;
function currentState() {
return {
siteId: config ? config.siteId : null,
status: status,
reason: statusReason,
count: last.count,
belowMin: !!last.belowMin,
floor: last.belowMin ? last.count : null,
total: last.totalCount,
page: config && config.page ? sentPage : null,
pageCount: last.pageCount === undefined ? null : last.pageCount,
pageBelowMin: !!last.pageBelowMin
};
}
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
var announcer = null;
var announcedAt = 0;
var announcedCount = null;
var announceTimer = null;
function worthAnnouncing(count) {
if (announcedCount === null || (count === 0) !== (announcedCount === 0)) {
return true;
}
return Math.abs(count - announcedCount) >= Math.max(1, announcedCount / 10);
}
function announceCount() {
if (!config || !config.announce || last.count === null || !worthAnnouncing(last.count)) {
return;
}
var wait = announcedAt + config.announce * 1000 - Date.now();
if (wait > 0) {
if (!announceTimer) {
announceTimer = setTimeout(function () {
announceTimer = null;
announceCount();
}, wait);
}
return;
}
announcedAt = Date.now();
announcedCount = last.count;
region().textContent = last.belowMin ? words("fewerThan", last.count) : words("online", last.count);
}
function region() {
if (!announcer) {
announcer = document.createElement("div");
announcer.setAttribute("role", "status");
announcer.setAttribute("aria-label", words("announcerLabel"));
announcer.setAttribute("data-liveuser-announcer", "");
announcer.style.cssText = "position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)";
document.body.appendChild(announcer);
}
return announcer;
}
function stopAnnouncing() {
clearTimeout(announceTimer);
announceTimer = null;
if (announcer && announcer.parentNode) {
announcer.parentNode.removeChild(announcer);
}
announcer = null;
announcedCount = null;
announcedAt = 0;
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
function connectParams() {
var params = [
"siteId=" + encodeURIComponent(config.siteId),
"clientId=" + encodeURIComponent(clientId),
"enableTotalCount=" + (config.enableTotalCount ? "true" : "false"),
"visit=" + (visitCounted ? "0" : "1")
];
sentPage = currentPage();
if (sentPage) {
params.push("page=" + encodeURIComponent(sentPage));
}
if (tabs) {
params.push("shareTabs=1");
}
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
visitCounted = true;
send({ type: "join", siteId: config.siteId, clientId: clientId });
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
if (event.code !== 1006) {
presenceToken = null;
}
closedAt = Date.now();
socket = null;
connectionEnded();
scheduleReconnect();
}
function connectionEnded() {
clearInterval(heartbeatTimer);
heartbeatTimer = null;
if (openedAt && Date.now() - openedAt >= HEALTHY_AFTER) {
attempt = 0;
}
openedAt = 0;
}
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
presenceToken = null;
}
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
function onStreamError() {
log("stream closed");
if (!session) {
checkRefused();
}
closeStream();
connectionEnded();
scheduleReconnect();
}
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
function refuse(error, message) {
log("refused:", error);
disconnect();
refused = error;
targets("online", config.displayElementId).forEach(function (el) {
el.textContent = words("unknownSite");
el.title = "LiveUser: " + message;
el.setAttribute("data-live-error", error);
});
var detail = { error: error, message: message, siteId: config.siteId };
window.dispatchEvent(new CustomEvent("liveuser:error", { detail: detail }));
setStatus("refused", error);
}
function currentPage() {
if (!config.page) {
return null;
}
var page = String(config.page);
if (page === "auto") {
page = window.location.pathname;
} else if (page === "hash") {
page = "/" + window.location.hash.replace(/^#!?\/?/, "").split("?")[0];
}
page = grouped(page).replace(/[^\x21-\x7e]/g, encodeURIComponent);
return page.slice(0, MAX_PAGE_LENGTH) || "/";
}
function grouped(path) {
var groups = config.pageGroups || [];
for (var i = 0; i < groups.length; i += 1) {
if (patternOf(groups[i]).test(path)) {
return groups[i];
}
}
return path;
}
function patternOf(group) {
var parts = String(group).split("/").map(function (part) {
if (part === "**") {
return ".*";
}
return part
.split("*")
.map(function (text) {
return text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
})
.join("[^/]+");
});
return new RegExp("^" + parts.join("/") + "/?$");
}
function onNavigate() {
var follows = config && (config.page === "auto" || config.page === "hash");
if (!follows || !sentPage || currentPage() === sentPage) {
return;
}
clearTimeout(moveTimer);
var wait = Math.max(MOVE_DEBOUNCE, lastMoveAt + MOVE_INTERVAL - Date.now());
moveTimer = setTimeout(sendMove, wait);
}
function sendMove() {
moveTimer = null;
if (stream && !session) {
return;
}
if (stream) {
closeStream();
connectionEnded();
connect();
return;
}
if (!socket || socket.readyState !== 1) {
return;
}
sentPage = currentPage();
lastMoveAt = Date.now();
log("moving to page", sentPage);
last.pageSlot = undefined;
send({ type: "page", page: sentPage });
}
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
function sharesTabs() {
return (
!config.countTabs &&
!config.page &&
!usesStream() &&
!!(navigator.locks && window.BroadcastChannel)
);
}
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
showStatus("connecting");
sayHello();
var options = tabs.abort ? { signal: tabs.abort.signal } : {};
navigator.locks.request(name, options, holdConnection).catch(function () {});
}
function sayHello() {
tabs.channel.postMessage({ kind: "hello", id: tabs.id, visit: !visitCounted });
}
function holdConnection() {
return new Promise(function (resolve) {
if (!tabs) {
resolve();
return;
}
log("this tab holds the connection");
tabs.release = resolve;
tabs.leading = true;
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
setStatus("live");
render();
announce();
}
}
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
function relayVisits() {
while (tabs && tabs.visits > 0 && socket && socket.readyState === 1) {
send({ type: "visit" });
tabs.visits -= 1;
}
}
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
function start() {
if (sharesTabs()) {
joinTabs();
} else {
connect();
}
}
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
status = "connecting";
statusReason = null;
watchNavigation();
window.addEventListener("popstate", onNavigate);
window.addEventListener("hashchange", onNavigate);
window.addEventListener("pagehide", onPageHide);
window.addEventListener("pageshow", onPageShow);
window.addEventListener("online", onOnline);
start();
}
function destroy() {
leaveTabs();
stopAnnouncing();
window.removeEventListener("pagehide", onPageHide);
window.removeEventListener("pageshow", onPageShow);
window.removeEventListener("online", onOnline);
window.removeEventListener("popstate", onNavigate);
window.removeEventListener("hashchange", onNavigate);
config = null;
}
window.LiveUser = {
init: init,
destroy: destroy,
config: function () {
return config ? merge(DEFAULTS, config) : null;
},
formatNumber: formatNumber,
state: currentState,
subscribe: subscribe
};
return window.LiveUser;
})();
const serverUrl = new URL(import.meta.url).origin.replace(/^http/, "ws");
export function init(config) {
return LiveUser.init(Object.assign({ serverUrl: serverUrl }, config));
}
export const { destroy, config, state, subscribe, formatNumber } = LiveUser;
export default { init, destroy, config, state, subscribe, formatNumber };
