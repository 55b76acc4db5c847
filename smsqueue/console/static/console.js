// Reloads the dashboard's numbers every few seconds (plain fetch; the page works without it).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("dashboard");
  if (!box) return;
  var url = box.getAttribute("data-refresh");
  var seconds = parseInt(box.getAttribute("data-seconds"), 10) || 30;
  function reload() {
    if (document.hidden) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("status " + r.status);
        return r.text();
      })
      .then(function (html) { box.innerHTML = html; })
      .catch(function () { /* signed out or offline: the next full load tells */ });
  }
  setInterval(reload, seconds * 1000);
});
