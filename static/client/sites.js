// The one global, LiveUser, over one widget per site on the page. The first widget is the one
// init() configures: it shows its site in the configured elements and in [data-liveuser]
// elements that name no site. An element naming another site (data-liveuser="other-site")
// gets that site's own widget, with the same settings otherwise: a header and a footer, or two
// sites, on one page.

var widgets = [];

// The first widget (made on first use).
function mainWidget() {
  if (!widgets.length) {
    widgets.push(widget());
  }
  return widgets[0];
}

function widgetOf(siteId) {
  for (var i = 0; i < widgets.length; i += 1) {
    var config = widgets[i].config();
    if (config && config.siteId === siteId) {
      return widgets[i];
    }
  }
  return null;
}

// The sites the page's elements name, other than the ones with a widget: each gets one.
function startNamedSites(settings) {
  var named = document.querySelectorAll("[data-liveuser]");
  for (var i = 0; i < named.length; i += 1) {
    var site = named[i].getAttribute("data-liveuser");
    if (site && /^[A-Za-z0-9._-]{1,64}$/.test(site) && !widgetOf(site)) {
      var w = widget();
      widgets.push(w);
      w.init(forSite(settings, site));
    }
  }
}

// `settings` for another site: no configured elements (its elements name it), a total or a
// page count only where an element of it shows one.
function forSite(settings, site) {
  var own = {};
  Object.keys(settings).forEach(function (key) {
    own[key] = settings[key];
  });
  var shows = function (what) {
    return !!document.querySelector('[data-liveuser="' + site + '"][data-liveuser-show="' + what + '"]');
  };
  own.siteId = site;
  own.displayElementId = "";
  own.totalCountElementId = "";
  own.pageElementId = "";
  own.namedOnly = true;
  own.enableTotalCount = shows("total");
  own.page = shows("page") ? settings.page || "auto" : null;
  return own;
}

window.LiveUser = {
  init: function (config) {
    mainWidget().init(config);
    startNamedSites(mainWidget().config());
  },
  destroy: function () {
    widgets.forEach(function (w) {
      w.destroy();
    });
    widgets = widgets.slice(0, 1);
  },
  config: function () {
    return mainWidget().config();
  },
  formatNumber: function (n) {
    return mainWidget().formatNumber(n);
  },
  // A site's state, and its changes: the first site's unless another is named.
  state: function (siteId) {
    return (widgetOf(siteId) || mainWidget()).state();
  },
  subscribe: function (listener, siteId) {
    return (widgetOf(siteId) || mainWidget()).subscribe(listener);
  }
};
