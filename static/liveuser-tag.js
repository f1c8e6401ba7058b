// Starts the client from its own script tag: <script defer src=".../v/<version>/liveuser.js"
// data-site-id="my-site" data-enable-total-count="true">. These bytes never change for a
// version, so a page may pin them with Subresource Integrity; the configuration is in the
// tag's data-* attributes instead of the URL, and the service is the script's own origin.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.LiveUser || window.LiveUser.config()) {
    return;
  }
  var origin = new URL(script.src).origin;
  var config = { serverUrl: origin.replace(/^http/, "ws") };
  Object.keys(script.dataset).forEach(function (key) {
    config[key] = value(key, script.dataset[key]);
  });
  window.LiveUser.init(config);

  // An attribute's text as the setting it is: flags, numbers, lists of page groups. A number
  // out of its range (as the loader checks them: a reconnect delay of "abc", say) is left to
  // the default.
  function value(key, text) {
    if (text === "true" || text === "false") {
      return text === "true";
    }
    if (key === "pageGroups") {
      return text.split(",").map(function (g) {
        return g.trim();
      });
    }
    var range = { reconnectDelay: [500, 60000], announce: [5, 3600], idleAfter: [5, 86400] }[key];
    if (range) {
      var n = Number(text);
      return n >= range[0] && n <= range[1] ? Math.floor(n) : undefined;
    }
    return text;
  }
})();
