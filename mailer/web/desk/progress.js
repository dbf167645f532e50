// The desk's progress page: updates its figures in place every few seconds while the campaign is
// queued, scheduled or being sent (fetching .../progress.json), with a button to stop (WCAG 2.2.2).
// Without this script the page's Refresh button loads the page again.
(function () {
  "use strict";
  var form = document.getElementById("live");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-json");
  var every = 1000 * (parseInt(form.getAttribute("data-every"), 10) || 5);
  var words = document.getElementById("live-words");
  var timer = null;
  var stop = document.createElement("button");
  stop.type = "button";
  stop.className = "secondary";
  stop.textContent = "Stop updating";
  form.insertBefore(stop, words);
  words.textContent = "The figures update by themselves every " + every / 1000 + " seconds.";

  function number(n) { return Number(n).toLocaleString("en-GB"); }
  function put(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== value) { el.textContent = value; }
  }
  function halt(why) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    stop.hidden = true;
    words.textContent = why;
  }
  function show(f) {
    put("sent", number(f.sent));
    put("deferred", number(f.deferred));
    put("failed", number(f.failed));
    put("waiting", number(f.waiting));
    put("state", f.status);
    var warning = document.getElementById("no-worker");
    if (warning) {
      warning.hidden = !f.no_worker;
      if (f.no_worker) { put("no-worker-words", f.no_worker); }
    }
    if (!f.live) { halt("Sending has finished: use Refresh to see the whole page as it is now."); }
  }
  function update() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        var type = r.headers.get("Content-Type") || "";
        if (!r.ok || type.indexOf("application/json") !== 0) { throw new Error("no figures"); }
        return r.json();
      })
      .then(show)
      .catch(function () { halt("The figures could not be updated: use Refresh."); });
  }
  stop.addEventListener("click", function () {
    halt("The figures no longer update by themselves: use Refresh.");
  });
  timer = setInterval(update, every);
}());
