// A site the service refuses.

// A connection refused before it opened tells the page nothing; the API says why. A site
// the service does not serve is refused for good: say so, and stop trying.
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

// Shows the refusal where the count would be (marked data-live-error, for the page's style),
// and tells the page: a liveuser:error event, and the status "refused".
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
