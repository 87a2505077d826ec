// Follows a running build's log on its page (templates/build.html): asks the page's
// log endpoint for the lines after those shown, appends them as text, and once the build
// has ended shows how it ended. Log lines are tenant text: they only ever reach the page
// through textContent.
"use strict";

(function () {
  const POLL_MS = 1000;
  const RETRY_MS = 5000; // after a network failure: the registry may be restarting
  const MAX_FAILURES = 12;

  const section = document.getElementById("build");
  if (!section || section.dataset.final === "true") {
    return;
  }
  const url = section.dataset.logUrl;
  let next = Number(section.dataset.logNext) || 0;
  let failures = 0;

  const log = document.getElementById("build-log");
  const note = document.getElementById("build-log-note");

  function setText(id, text) {
    const element = document.getElementById(id);
    if (element && text !== null && text !== undefined) {
      element.textContent = text;
    }
  }

  function showStatus(status) {
    const element = document.getElementById("build-status");
    element.textContent = status;
    element.className = "status status-" + status;
  }

  function showEnd(answer) {
    setText("build-finished", answer.finished_at);
    setText("build-duration", answer.duration);
    setText("build-error", answer.error || "");
    const reference = document.getElementById("build-reference");
    if (answer.reference && answer.manifest) {
      const link = document.createElement("a");
      link.setAttribute("href", answer.manifest);
      link.textContent = answer.reference;
      reference.replaceChildren(link);
    } else {
      reference.textContent = answer.reference || "nothing";
    }
    const cancel = document.getElementById("build-cancel");
    if (cancel) {
      cancel.remove();
    }
    note.textContent = "";
  }

  function stop(message) {
    note.textContent = message;
  }

  async function poll() {
    let answer;
    try {
      const response = await fetch(url + "?after=" + next, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        redirect: "manual",
      });
      const json = (response.headers.get("Content-Type") || "").startsWith("application/json");
      if (!response.ok || !json) {
        // Signed out, the build gone, or refused: only a reload can say what to do.
        stop("Stopped following the log; reload the page.");
        return;
      }
      answer = await response.json();
    } catch (error) {
      failures += 1;
      if (failures >= MAX_FAILURES) {
        stop("Cannot reach the registry; reload the page.");
      } else {
        window.setTimeout(poll, RETRY_MS);
      }
      return;
    }
    failures = 0;
    for (const line of answer.lines) {
      const item = document.createElement("li");
      item.textContent = line;
      log.append(item);
    }
    next = answer.next;
    showStatus(answer.status);
    if (answer.final) {
      showEnd(answer);
    } else {
      window.setTimeout(poll, POLL_MS);
    }
  }

  window.setTimeout(poll, POLL_MS);
})();
