// Live updates: the server pushes the new HTML of this page's live part whenever what it shows
// changes (server-sent events), so nobody needs to reload. The HTML is the server's own render of
// the same page, escaped there like the page itself. The filters' menus also apply on change.
(function () {
  "use strict";
  document.querySelectorAll("form.filters select").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  var region = document.getElementById("live");
  var state = document.getElementById("live-state");
  if (!region || !window.EventSource) {
    return;
  }
  var source = new EventSource("/live?page=" + encodeURIComponent(location.pathname + location.search));
  source.addEventListener("page", function (e) {
    region.innerHTML = e.data;
  });
  source.onopen = function () {
    state.textContent = "live";
    state.className = "live-state on";
  };
  source.onerror = function () {
    state.textContent = "reconnecting…";
    state.className = "live-state off";
  };
})();
