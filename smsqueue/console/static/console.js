// The console's only script, small and optional: every page works without it.
"use strict";

// A refused form: the keyboard starts at the first field to correct (its error is tied to it).
document.addEventListener("DOMContentLoaded", function () {
  var first = document.querySelector('main [aria-invalid="true"]');
  if (first) first.focus();
});

// Replaces the box's content with the page part at `url` (plain fetch), then calls `then` if given.
function reloadInto(box, url, then) {
  fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then(function (r) {
      if (r.redirected || !r.ok) throw new Error("status " + r.status);
      return r.text();
    })
    .then(function (html) {
      box.innerHTML = html;
      if (then) then();
    })
    .catch(function () { /* signed out or offline: the next full load tells */ });
}

// Reloads the dashboard's numbers every few seconds (plain fetch).
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("dashboard");
  if (!box) return;
  var url = box.getAttribute("data-refresh");
  var seconds = parseInt(box.getAttribute("data-seconds"), 10) || 30;
  setInterval(function () {
    if (!document.hidden) reloadInto(box, url);
  }, seconds * 1000);
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

// A running job's progress, reloaded every few seconds (plain fetch) until it is final.
document.addEventListener("DOMContentLoaded", function () {
  var box = document.getElementById("job-progress");
  if (!box) return;
  var url = box.getAttribute("data-refresh");
  var seconds = parseInt(box.getAttribute("data-seconds"), 10) || 2;
  function final() {
    var part = box.querySelector("[data-final]");
    return part && part.getAttribute("data-final") === "1";
  }
  if (final()) return;
  var timer = setInterval(function () {
    reloadInto(box, url, function () { if (final()) clearInterval(timer); });
  }, seconds * 1000);
});
