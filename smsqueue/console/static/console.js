// The console's only script, small and optional: every page works without it.
"use strict";

// A refused form: the keyboard starts at the first field to correct (its error is tied to it).
document.addEventListener("DOMContentLoaded", function () {
  var first = document.querySelector('main [aria-invalid="true"]');
  if (first) first.focus();
});

// Reloads the dashboard's numbers every few seconds (plain fetch).
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

// Asks for a provider's balance once the page is shown: the provider may be slow, the page never waits.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("balance");
  if (!box) return;
  fetch(box.getAttribute("data-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) {
      if (r.redirected || !r.ok) throw new Error("status " + r.status);
      return r.json();
    })
    .then(function (answer) {
      box.textContent = answer.text || answer.error;
      if (answer.error) box.classList.add("field-error");
    })
    .catch(function () { box.textContent = "—"; });
});
