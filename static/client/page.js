// The page's own count.

// The page this tab is on, as the server should count it (null: the site only): its path
// ("auto"), its hash route ("hash": "#/users/7" is "/users/7"), or the name given; a path a
// page group matches is counted under the group. Paths are ASCII already (the browser
// percent-encodes the rest; a given name is encoded here as the service takes visible ASCII
// only); very long ones are cut.
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

// The first of config.pageGroups that `path` matches, or `path`: in a pattern, "*" stands for
// one path segment, and a pattern ending in "/**" for the rest of the path.
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

// A single-page app changed the URL: move this connection's count to the new page (the
// latest page wins if several moves come at once).
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

// pushState and replaceState fire no event: wrap them (once per window, for every widget on
// the page) so that they fire liveuser:navigate, which each widget listens for.
function watchNavigation() {
  ["pushState", "replaceState"].forEach(function (name) {
    var original = window.history[name];
    if (typeof original !== "function" || original.liveUserWrapped) {
      return;
    }
    var wrapped = function () {
      var result = original.apply(this, arguments);
      window.dispatchEvent(new Event("liveuser:navigate"));
      return result;
    };
    wrapped.liveUserWrapped = true;
    window.history[name] = wrapped;
  });
}
