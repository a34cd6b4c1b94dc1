// "Useful / not useful" on the search page without leaving it: the form
// (templates/insights/_feedback.html) is sent to POST /api/v1/feedback/ instead. Without
// JavaScript the same form posts to /feedback/, which records the vote and comes back.
// Listens on the document: search.js may replace the results (and these forms).
(function () {
  "use strict";

  function vote(form, useful) {
    var body = { query_log: Number(form.elements.query_log.value), useful: useful };
    if (form.elements.answer) body.answer = true;
    else body.document = Number(form.elements.document.value);
    var status = form.querySelector(".feedback-status");
    var buttons = form.querySelectorAll("button[name=useful]");
    buttons.forEach(function (b) { b.disabled = true; });
    return fetch(form.dataset.api, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": form.elements.csrfmiddlewaretoken.value,
      },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) throw new Error(data.detail || "not recorded");
          buttons.forEach(function (b) {
            b.setAttribute("aria-pressed", String((b.value === "yes") === useful));
          });
          status.textContent = "Thanks for the feedback.";
        });
      })
      .catch(function (error) {
        status.textContent = "The feedback was not recorded: " + error.message + ".";
      })
      .finally(function () {
        buttons.forEach(function (b) { b.disabled = false; });
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("feedback")) return;
    if (!window.fetch) return; // the form posts as it is
    event.preventDefault();
    var button = event.submitter;
    vote(form, button ? button.value === "yes" : true);
  });
})();
