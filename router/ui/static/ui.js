// Refresh the dashboard without a page reload: every element with data-fragment re-fetches
// its server-rendered HTML every data-refresh milliseconds and swaps it in. Forms still work
// without this script (they post and come back to the page).
(function () {
  "use strict";
  function busy(el) {
    // Never swap the content under a control the user is on.
    var active = document.activeElement;
    return active && active !== document.body && el.contains(active);
  }
  function start(el) {
    var every = Number(el.getAttribute("data-refresh")) || 5000;
    var url = el.getAttribute("data-fragment");
    var running = false;
    async function refresh() {
      if (document.hidden || running || busy(el)) return;
      running = true;
      try {
        var resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (resp.status === 401) { window.location.assign("/ui/login"); return; }
        if (!resp.ok) { el.setAttribute("data-stale", "true"); return; }
        var html = await resp.text();
        if (!busy(el)) { el.innerHTML = html; el.setAttribute("data-stale", "false"); }
      } catch (err) {
        el.setAttribute("data-stale", "true");
      } finally {
        running = false;
      }
    }
    setInterval(refresh, every);
  }
  document.querySelectorAll("[data-fragment]").forEach(start);
})();
