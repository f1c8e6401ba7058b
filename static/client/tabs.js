// Tabs sharing one connection.

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
    // (Every browser with Web Locks has AbortController.)
    abort: new AbortController(),
    leading: false,
    release: null,
    followers: {},
    token: null,
    visits: 0
  };
  tabs.channel.onmessage = onTabMessage;
  setStatus("connecting");
  showStatus("connecting");
  sayHello();
  navigator.locks.request(name, { signal: tabs.abort.signal }, holdConnection).catch(function () {});
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
    setStatus("live");
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
  tabs.abort.abort();
  tabs.channel.close();
  tabs = null;
}
