// Screen readers. A count that changes twice a second must not be read out each time: with
// config.announce (seconds; 0, the default, announces nothing, as counters conventionally
// do), one visually hidden, labelled status region says "N people here now" at most that
// often, and only when the count moved enough to matter.

var announcer = null;
var announcedAt = 0;
var announcedCount = null;
var announceTimer = null;

// A move worth saying: to or from nobody, or by a tenth (at least one).
function worthAnnouncing(count) {
  if (announcedCount === null || (count === 0) !== (announcedCount === 0)) {
    return true;
  }
  return Math.abs(count - announcedCount) >= Math.max(1, announcedCount / 10);
}

function announceCount() {
  if (!config || !config.announce || last.count === null || !worthAnnouncing(last.count)) {
    return;
  }
  var wait = announcedAt + config.announce * 1000 - Date.now();
  if (wait > 0) {
    // Said when the interval is up, with the count as it is then.
    if (!announceTimer) {
      announceTimer = setTimeout(function () {
        announceTimer = null;
        announceCount();
      }, wait);
    }
    return;
  }
  announcedAt = Date.now();
  announcedCount = last.count;
  region().textContent = last.belowMin ? words("fewerThan", last.count) : words("online", last.count);
}

function region() {
  if (!announcer) {
    announcer = document.createElement("div");
    announcer.setAttribute("role", "status");
    announcer.setAttribute("aria-label", words("announcerLabel"));
    announcer.setAttribute("data-liveuser-announcer", "");
    // Visually hidden, still read.
    announcer.style.cssText = "position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)";
    document.body.appendChild(announcer);
  }
  return announcer;
}

function stopAnnouncing() {
  clearTimeout(announceTimer);
  announceTimer = null;
  if (announcer && announcer.parentNode) {
    announcer.parentNode.removeChild(announcer);
  }
  announcer = null;
  announcedCount = null;
  announcedAt = 0;
}
