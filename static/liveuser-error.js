// What /liveuser.js answers a page's script tag it cannot serve (a siteId that breaks the rules):
// the page is told why, where the count would be and as a liveuser:error event, instead of
// showing "Loading..." for good. (Any other client is answered a 400.)
(function () {
  "use strict";
  var error = __LIVEUSER_ERROR__;
  var shown = document.querySelectorAll("#liveuser, [data-liveuser]");
  for (var i = 0; i < shown.length; i += 1) {
    shown[i].textContent = error.text;
    shown[i].title = "LiveUser: " + error.message;
    shown[i].setAttribute("data-live-error", error.error);
  }
  var detail = { error: error.error, message: error.message };
  window.dispatchEvent(new CustomEvent("liveuser:error", { detail: detail }));
})();
