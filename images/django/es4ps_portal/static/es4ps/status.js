// Keeps the status page current: polls the JSON endpoint until the account is ready or failed.
"use strict";
(function () {
  const box = document.getElementById("account-status");
  if (!box) return;
  const message = document.getElementById("status-message");
  const list = document.getElementById("task-list");
  const finalStates = new Set(["ready", "failed", "name_taken", "disabled"]);
  let delay = 1500;

  function renderTasks(tasks) {
    list.replaceChildren(...tasks.map(function (task) {
      const item = document.createElement("li");
      item.className = "task task-" + task.state;
      const label = document.createElement("span");
      label.className = "task-label";
      label.textContent = task.label;
      const badge = document.createElement("span");
      badge.className = "badge badge-" + task.state;
      badge.textContent = task.state_label;
      item.append(label, badge);
      if (task.reason) {
        const reason = document.createElement("span");
        reason.className = "task-reason";
        reason.textContent = task.reason;
        item.append(reason);
      }
      return item;
    }));
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const status = await response.json();
        const changed = status.state !== box.dataset.state;
        box.dataset.state = status.state;
        box.className = "status status-" + status.state;
        message.textContent = status.message;
        renderTasks(status.tasks);
        // Verification happened elsewhere (link opened on a phone): reload to drop the code form.
        // ... or the name was refused at confirmation: reload to show the form that withdraws the registration.
        if (changed && ((status.email_verified && document.getElementById("verify-title")) || status.can_withdraw)) {
          window.location.reload();
          return;
        }
        if (finalStates.has(status.state) && !status.tasks.some(function (t) { return t.state === "queued"; })) return;
        delay = 1500;
      }
    } catch (error) {
      delay = Math.min(delay * 2, 30000);
    }
    window.setTimeout(poll, delay);
  }
  window.setTimeout(poll, delay);
})();
