// For pages that load the client directly (/init-liveuser.js): starts it with
// window.LiveUserConfig over this service's defaults (embedded by the service as JSON).
(function () {
  "use strict";
  var defaults = __LIVEUSER_CONFIG__;
  var given = window.LiveUserConfig || {};
  Object.keys(given).forEach(function (key) {
    defaults[key] = given[key];
  });
  if (!window.LiveUser.config()) {
    window.LiveUser.init(defaults);
  }
})();
