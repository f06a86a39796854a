// The flow page refreshes its panel every few seconds; pausing stops it. No framework, no build step.
(function () {
  "use strict";
  var panel = document.getElementById("flow-panel");
  var pause = document.getElementById("flow-pause");
  if (!panel) { return; }
  var every = Math.max(1, parseFloat(panel.dataset.every || "5")) * 1000;
  var paused = false;

  function refresh() {
    if (paused || document.hidden) { return; }
    fetch(panel.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.assign("/desk/signin?next=%2Fdesk%2Fflow"); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null && html !== undefined) { panel.innerHTML = html; } })
      .catch(function () { /* the next round tries again */ });
  }

  if (pause) {
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
      pause.textContent = paused ? "Resume updates" : "Pause updates";
      if (!paused) { refresh(); }
    });
  }
  window.setInterval(refresh, every);
}());
