/* The demo page's badge follows the live count: it is fetched again a moment after the count
 * changes (the badge reads what the broadcast stores, just after it publishes), so it never
 * keeps showing the count from before this reader was counted. */
(function () {
  "use strict";

  var shown = null;
  var timer = null;

  function reload(count) {
    var badge = document.getElementById("badge");
    if (!badge || count === shown) {
      return;
    }
    shown = count;
    // A new URL each count: the badge is cached for a few seconds, the count is not.
    badge.src = "/badge/demo.svg?count=" + count;
    badge.setAttribute("data-count", String(count));
  }

  document.addEventListener("liveuser:update", function (event) {
    var count = event.detail.count;
    clearTimeout(timer);
    timer = setTimeout(function () {
      reload(count);
    }, 1500);
  });
})();
