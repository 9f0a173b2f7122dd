// Live updates without a framework: poll the page's version and reload when it changes,
// unless the user is typing in a form (an approval reason must not be lost to a refresh).
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-poll");
  var version = body.getAttribute("data-version");
  // Navigate to the page's own GET address: reloading the answer to a POST would re-send it.
  var page = body.getAttribute("data-page");
  if (!url) { return; }
  function typing() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA") && el.type !== "hidden";
  }
  function check() {
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data && data.version !== version && !typing()) { window.location.replace(page); }
      })
      .catch(function () { /* daemon restarting: try again on the next beat */ })
      .then(function () { window.setTimeout(check, 2000); });
  }
  window.setTimeout(check, 2000);
})();
