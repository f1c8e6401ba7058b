// Starts the client with this page's configuration, checked and embedded by the service as
// JSON (never spliced into code), unless a copy of the script loaded earlier already runs.
(function () {
  "use strict";
  var config = __LIVEUSER_CONFIG__;
  if (!window.LiveUser.config()) {
    window.LiveUser.init(config);
  }
})();
