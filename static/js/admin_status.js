// The admin's documents list, live: while documents wait or are processed, poll the
// staff-only status endpoint (DocumentAdmin.status_view) for the rows on this page and
// update their cells in place — no reload, so ticked checkboxes and half-typed searches
// stay. Every text shown comes from the server (documents/progress.py words it); this
// script only puts it in place. Without JavaScript the page has a refresh link instead.
(function () {
  "use strict";

  var INTERVAL_MS = 3000;
  var MAX_BACKOFF_MS = 30000;
  var box = document.getElementById("live-status");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-url");
  var delay = INTERVAL_MS;
  var timer = null;

  function checkboxes() {
    return Array.prototype.slice.call(
      document.querySelectorAll("#result_list input.action-select")
    );
  }

  function setText(element, text) {
    if (element && element.textContent !== String(text)) {
      element.textContent = text;
    }
  }

  function updateRow(row, state) {
    var badge = row.querySelector("td.field-status_badge .status");
    if (badge) {
      badge.className = "status status-" + state.status;
      setText(badge, state.status);
    }
    setText(row.querySelector("td.field-status_badge .progress-note"), state.progress);
    setText(row.querySelector("td.field-short_error"), state.error);
    setText(row.querySelector("td.field-chunk_count"), state.chunk_count);
    setText(row.querySelector("td.field-embedding_model"), state.embedding_model);
  }

  function updateBatch(batch) {
    var bar = document.getElementById("batch-bar");
    if (!batch || !bar) {
      return;
    }
    bar.max = batch.total;
    bar.value = batch.ready + batch.failed;
    setText(bar, batch.text);
    setText(document.getElementById("batch-text"), batch.text);
  }

  function apply(data) {
    var rows = {};
    checkboxes().forEach(function (box) {
      rows[box.value] = box.closest("tr");
    });
    data.documents.forEach(function (state) {
      var row = rows[String(state.id)];
      if (row) {
        updateRow(row, state);
      }
    });
    var notice = document.getElementById("worker-notice");
    if (notice) {
      setText(notice, data.notice || "");
      notice.hidden = !data.notice;
    }
    var busy = document.getElementById("busy-note");
    if (busy) {
      setText(document.getElementById("busy-text"), data.busy_text);
      busy.hidden = !data.busy;
    }
    updateBatch(data.batch);
    box.setAttribute("data-busy", String(data.busy));
    box.setAttribute("data-batch-open", data.batch && !data.batch.finished ? "1" : "0");
  }

  function working() {
    return box.getAttribute("data-busy") !== "0" || box.getAttribute("data-batch-open") === "1";
  }

  function schedule() {
    window.clearTimeout(timer);
    if (working()) {
      timer = window.setTimeout(poll, delay);
    }
  }

  function poll() {
    var ids = checkboxes().map(function (box) {
      return box.value;
    });
    fetch(url + "?ids=" + encodeURIComponent(ids.join(",")), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        apply(data);
        delay = INTERVAL_MS;
        box.setAttribute("data-live", "1");
      })
      .catch(function () {
        // Signed out, or the server restarts: ask again, less often.
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      })
      .then(schedule);
  }

  // Polling stops while the tab is hidden and resumes at once when it is shown again.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      window.clearTimeout(timer);
    } else if (working()) {
      poll();
    }
  });

  schedule();
})();
