// Search as you type: a progressive enhancement of the plain GET form. Without this file
// the form submits normally; with it, typing (after a pause) or changing the mode or the
// collection fetches the same server-rendered page and swaps in its results.
(function () {
  "use strict";
  var form = document.getElementById("search-form");
  var live = document.getElementById("live-status");
  if (!form || !window.fetch || !window.DOMParser || !window.history.replaceState) return;
  var input = form.elements.q;
  var timer = null;
  var controller = null;
  var DELAY_MS = 300;
  var MIN_CHARS = 2;

  function searchUrl() {
    var params = new URLSearchParams(new FormData(form));
    if (params.get("collection") === "all") params.delete("collection");
    return form.getAttribute("action") + "?" + params.toString();
  }

  function run() {
    var query = input.value.trim();
    if (query.length < MIN_CHARS) return;
    var url = searchUrl();
    if (controller) controller.abort();
    var mine = window.AbortController ? new AbortController() : null;
    controller = mine;
    form.setAttribute("aria-busy", "true");
    fetch(url, { signal: mine && mine.signal, credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var parsed = new DOMParser().parseFromString(html, "text/html");
        var fresh = parsed.getElementById("results");
        var current = document.getElementById("results");
        if (!fresh || !current) return;
        current.replaceWith(document.importNode(fresh, true));
        window.history.replaceState(null, "", url);
        document.title = parsed.title;
        if (live) live.textContent = fresh.getAttribute("data-summary") || "";
      })
      .catch(function () { /* aborted by a newer search, or offline: the form still works */ })
      .then(function () {
        if (controller === mine) form.removeAttribute("aria-busy");
      });
  }

  input.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(run, DELAY_MS);
  });
  form.addEventListener("change", function (event) {
    if (event.target !== input) run();
  });
})();
