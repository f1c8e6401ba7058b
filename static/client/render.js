// What the page shows: the counts in their elements. The configured ids (as the original names
// them), and any number of [data-liveuser] elements, each showing what its
// data-liveuser-show says: "online" (the default), "total" or "page". (data-liveuser may name
// the site: an element naming another site is left alone.)

// The elements that show `what`: the configured one, then the marked ones.
function targets(what, id) {
  var found = [];
  var el = id && document.getElementById(id);
  if (el) {
    found.push(el);
  }
  var marked = document.querySelectorAll("[data-liveuser]");
  for (var i = 0; i < marked.length; i += 1) {
    var site = marked[i].getAttribute("data-liveuser");
    var shows = marked[i].getAttribute("data-liveuser-show") || "online";
    var mine = site ? site === config.siteId : !config.namedOnly;
    if (shows === what && mine && found.indexOf(marked[i]) < 0) {
      found.push(marked[i]);
    }
  }
  return found;
}

// Before the first count: say what the connection is doing.
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

// A page beyond the site's busiest pages has no count (null): say so rather than guess.
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

// A count below the site's privacy floor arrives as the floor with a flag: the exact number
// is not known here, so say "fewer than" rather than show the floor as if it were the count.
function showCount(el, count, belowMin, attribute) {
  el.textContent = belowMin ? words("fewerThan", count) : formatNumber(count);
  el.setAttribute(attribute, belowMin ? "<" + count : String(count));
}
