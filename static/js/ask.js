// Ask, streamed: a progressive enhancement of the Ask form (templates/search/_ask.html).
// Without this file the form posts and the page comes back with the whole answer; with it,
// the answer is read as Server-Sent Events from /api/v1/ask/ and written in as it comes.
// The model's words only ever become text nodes; the citation links are built here from
// the passages the server numbered.
(function () {
  "use strict";
  if (!window.fetch || !window.TextDecoder || !window.ReadableStream) return;
  var CITATION = /\[(\d+(?:\s*[,;]\s*\d+)*)\]/g;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function pagesLabel(passage) {
    if (passage.first_page === null) return "";
    if (passage.last_page === null || passage.last_page === passage.first_page) {
      return "p. " + passage.first_page;
    }
    return "pp. " + passage.first_page + "–" + passage.last_page;
  }

  // The answer so far as text and links; a number that names no passage stays text.
  function renderAnswer(target, text, passages) {
    target.textContent = "";
    var position = 0;
    text.replace(CITATION, function (match, group, offset) {
      var numbers = group.split(/\s*[,;]\s*/);
      if (!numbers.every(function (n) { return passages[n]; })) return match;
      target.appendChild(document.createTextNode(text.slice(position, offset)));
      numbers.forEach(function (n) {
        var link = el("a", "cite", "[" + n + "]");
        link.href = passages[n].url;
        link.title = passages[n].document_title;
        target.appendChild(link);
      });
      position = offset + match.length;
      return match;
    });
    target.appendChild(document.createTextNode(text.slice(position)));
  }

  function renderSources(answer, citations) {
    if (!citations.length) return;
    answer.appendChild(el("h3", "sources-title", "Sources"));
    var list = el("ol", "sources");
    citations.forEach(function (passage) {
      var item = el("li");
      item.value = passage.number;
      var link = el("a", "", passage.document_title);
      link.href = passage.url;
      item.appendChild(link);
      var pages = pagesLabel(passage);
      if (pages) {
        item.appendChild(document.createTextNode(" "));
        item.appendChild(el("span", "muted", pages));
      }
      list.appendChild(item);
    });
    answer.appendChild(list);
  }

  // "Useful / not useful" on the streamed answer, once it is complete: the same form as
  // templates/insights/_feedback.html, sent by feedback.js (or posted without it).
  function renderFeedback(answer, form, logId) {
    if (!logId || !form.dataset.feedbackApi) return;
    var feedback = el("form", "feedback");
    feedback.method = "post";
    feedback.action = form.dataset.feedbackPage;
    feedback.id = "feedback-answer";
    feedback.dataset.api = form.dataset.feedbackApi;
    feedback.setAttribute("aria-label", "Was the answer useful?");
    [
      ["csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value],
      ["query_log", logId],
      ["answer", "on"],
      ["next", window.location.pathname + window.location.search],
    ].forEach(function (pair) {
      var input = el("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      feedback.appendChild(input);
    });
    feedback.appendChild(el("span", "feedback-label muted", "Useful?"));
    [["yes", "Useful"], ["no", "Not useful"]].forEach(function (pair) {
      feedback.appendChild(document.createTextNode(" "));
      var button = el("button", "link", pair[1]);
      button.type = "submit";
      button.name = "useful";
      button.value = pair[0];
      button.setAttribute("aria-pressed", "false");
      feedback.appendChild(button);
    });
    feedback.appendChild(document.createTextNode(" "));
    var status = el("span", "feedback-status muted");
    status.setAttribute("role", "status");
    feedback.appendChild(status);
    answer.appendChild(feedback);
  }

  function showError(answer, message) {
    var alert = el("p", "alert alert-error", message);
    alert.setAttribute("role", "alert");
    answer.appendChild(alert);
  }

  // Server-Sent Events from a fetch() body: blocks separated by a blank line, each with
  // an `event:` and a `data:` line.
  function readEvents(response, onEvent) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true });
        var blocks = buffer.split("\n\n");
        buffer = blocks.pop();
        for (var i = 0; i < blocks.length; i++) {
          var name = "message";
          var data = "";
          blocks[i].split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) name = line.slice(6).trim();
            else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
          });
          if (onEvent(name, data ? JSON.parse(data) : null) === false) return reader.cancel();
        }
        return pump();
      });
    }
    return pump();
  }

  function ask(form) {
    var section = form.closest(".ask");
    var answer = section.querySelector(".answer");
    var button = form.querySelector("button[type=submit]");
    var status = el("p", "answer-status muted", "Finding passages…");
    status.setAttribute("role", "status");
    var text = el("p", "answer-text");
    answer.textContent = "";
    answer.appendChild(status);
    answer.appendChild(text);
    answer.hidden = false;
    answer.setAttribute("aria-busy", "true");
    button.disabled = true;

    var collections = form.dataset.collections ? form.dataset.collections.split(",") : [];
    var body = { query: form.dataset.query, mode: form.dataset.mode, stream: true };
    if (collections.length) body.filters = { collections: collections };
    var passages = {};
    var written = "";
    var failed = false;

    function finish(message) {
      status.textContent = message;
      answer.removeAttribute("aria-busy");
      button.disabled = false;
    }

    fetch(form.dataset.api, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        "X-CSRFToken": form.elements.csrfmiddlewaretoken.value,
      },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        if (!response.ok) {
          return response.json().then(function (error) {
            showError(answer, error.detail || "The answer failed (" + response.status + ").");
            finish("No answer.");
          });
        }
        var logId = response.headers.get("X-Query-Log-Id");  // the answer's row, for votes
        return readEvents(response, function (name, data) {
          // A new search replaced the results (and this answer) meanwhile: stop reading.
          if (!document.body.contains(answer)) return false;
          if (name === "retrieval") {
            data.citations.forEach(function (passage) { passages[passage.number] = passage; });
            status.textContent = "Writing the answer…";
          } else if (name === "token") {
            written += data.text;
            renderAnswer(text, written, passages);
          } else if (name === "citations") {
            renderSources(answer, data.citations);
          } else if (name === "error") {
            failed = true;
            showError(answer, data.detail);
          } else if (name === "done") {
            finish(failed ? "The answer stopped early." : "Answer complete.");
            if (!failed) renderFeedback(answer, form, logId);
          }
        });
      })
      .catch(function () {
        showError(answer, "The answer could not be loaded. Ask again, or reload the page.");
        finish("No answer.");
      });
  }

  // Delegated: search as you type (search.js) replaces the results, the form with them.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("ask-form")) return;
    event.preventDefault();
    ask(form);
  });
})();
