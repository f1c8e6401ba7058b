// Idle tabs. By default a hidden tab counts as a reader, as it always has. With countIdle
// false, a tab hidden for longer than idleAfter seconds leaves as a closing tab does (its
// socket closes cleanly, or its stream sends its leave beacon, and the service drops the
// presence at once), keeps showing its last count with the status "idle", and comes back
// when shown. A tab that holds its browser's shared connection hands it over to another tab
// as it leaves, so a browser stops counting when its last tab goes idle.

var idleTimer = null;

// Hidden: leave once hidden for idleAfter seconds (5, for tests, at the least: anything else,
// such as init({idleAfter: "soon"}), means the default, five minutes; the loader and the tag
// also take no more than a day). Shown: come back, if gone.
function onVisibility() {
  clearTimeout(idleTimer);
  if (config.countIdle !== false || refused) {
    return;
  }
  if (document.hidden) {
    idleTimer = setTimeout(goIdle, (config.idleAfter >= 5 ? config.idleAfter : 300) * 1000);
  } else if (status === "idle") {
    attempt = 0;
    start();
  }
}

function goIdle() {
  leaveTabs();
  setStatus("idle");
}
