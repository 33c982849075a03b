/* funnelops dashboard: times in the viewer's zone, the runs filter, Force/Pause/Resume, log following.
   Plain JavaScript, no build step. Text from the server is always inserted as text (textContent),
   never as HTML. */
(function () {
  "use strict";

  function localize(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", timeZoneName: "short"
      });
    });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") || "" : "";
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text || resp.statusText }; }
        return { status: resp.status, data: data || {} };
      });
    });
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function runLink(id) {
    var a = el("a", "run-link", "run " + id);
    a.href = "/runs/" + encodeURIComponent(String(id));
    return a;
  }

  function timeEl(iso) {
    var t = el("time", null, iso || "-");
    if (iso) { t.setAttribute("datetime", iso); t.title = iso; }
    return t;
  }

  function startedRun(data) {
    var jobs = (data && data.jobs) || [];
    for (var i = jobs.length - 1; i >= 0; i--) {
      var run = jobs[i] && jobs[i].detail && jobs[i].detail.run;
      if (run && run.id !== undefined && run.id !== null) return run;
    }
    return null;
  }

  /* One outcome: the box shows the latest (class ok/refused/error), the history keeps every one. */
  function outcome(kind, parts) {
    var box = document.getElementById("force-result");
    if (!box) return;
    box.className = "result " + kind;
    box.textContent = "";
    parts.forEach(function (p) { box.appendChild(typeof p === "string" ? document.createTextNode(p) : p); });
    var hist = document.getElementById("force-history");
    if (!hist) {
      hist = el("ul", null); hist.id = "force-history";
      box.parentNode.insertBefore(hist, box.nextSibling);
    }
    var li = el("li", kind);
    parts.forEach(function (p) { li.appendChild(typeof p === "string" ? document.createTextNode(p) : p.cloneNode(true)); });
    hist.insertBefore(li, hist.firstChild);
    localize(box); localize(li);
  }

  function showForce(name, res) {
    var d = res.data || {};
    if (res.status === 200) {
      var run = startedRun(d);
      if (run) return outcome("ok", [name + ": started ", runLink(run.id), " of " + (run.workflow || "its workflow") + "."]);
      return outcome(d.ok === false ? "error" : "ok", [name + ": " + (d.ok === false ? "failed" : "done") + "."]);
    }
    var holder = d.details && d.details.holder;
    if (res.status === 409 && holder) {
      var parts = [name + ": refused, " + (holder.workflow || "the workflow") + " is already running as "];
      parts.push(holder.run_id !== null && holder.run_id !== undefined ? runLink(holder.run_id) : "owner " + holder.owner);
      parts.push(", started ", timeEl(holder.acquired_at), " by ");
      parts.push(el("span", "holder-actor", holder.actor || holder.owner || "?"));
      if (holder.trigger) parts.push(" (" + holder.trigger + ")");
      parts.push(".");
      return outcome("refused", parts);
    }
    var msg = d.error || ("HTTP " + res.status);
    if (d.hint) msg += " — " + d.hint;
    outcome(res.status === 409 ? "refused" : "error", [name + ": " + msg]);
  }

  function onSchedulerClick(ev) {
    var btn = ev.target.closest("button.force, button.pause, button.resume");
    if (!btn) return;
    var id = btn.getAttribute("data-scheduler");
    var name = btn.getAttribute("data-name") || id;
    if (btn.classList.contains("force")) {
      postJSON("/api/force", { scheduler: id }).then(function (res) { showForce(name, res); },
        function (err) { outcome("error", [name + ": " + err]); });
      return;
    }
    var action = btn.classList.contains("pause") ? "pause" : "resume";
    btn.disabled = true;
    postJSON("/api/schedulers/" + encodeURIComponent(id) + "/" + action, {}).then(function (res) {
      if (res.status === 200) { window.location.reload(); return; }
      btn.disabled = false;
      outcome("error", [name + ": " + ((res.data && res.data.error) || ("HTTP " + res.status))]);
    }, function (err) { btn.disabled = false; outcome("error", [name + ": " + err]); });
  }

  /* The run page: append new log text until the run has ended, then reload once for the final
     steps and rows. */
  function followLogs() {
    var pre = document.getElementById("logs");
    if (!pre || pre.getAttribute("data-ended") === "1") return;
    var url = pre.getAttribute("data-url");
    var cursor = pre.getAttribute("data-cursor") || "";
    var delay = 1000;
    function tick() {
      fetch(url + "?cursor=" + encodeURIComponent(cursor), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (resp) { return resp.ok ? resp.json() : Promise.reject(resp.status); })
        .then(function (doc) {
          var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
          (doc.chunks || []).forEach(function (c) {
            if (c.first) pre.appendChild(document.createTextNode("==> " + c.source + " <==\n"));
            pre.appendChild(document.createTextNode(c.text));
          });
          if (atBottom) pre.scrollTop = pre.scrollHeight;
          cursor = doc.cursor || cursor;
          pre.setAttribute("data-cursor", cursor);
          var state = document.getElementById("run-state");
          if (state && doc.state) { state.textContent = doc.state; state.setAttribute("data-state", doc.state); }
          delay = 1000;
          if (doc.ended) { pre.setAttribute("data-ended", "1"); window.setTimeout(function () { window.location.reload(); }, 300); return; }
          window.setTimeout(tick, delay);
        }, function () { delay = Math.min(delay * 2, 10000); window.setTimeout(tick, delay); });
    }
    window.setTimeout(tick, delay);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localize(document);
    var filter = document.getElementById("runs-filter");
    if (filter) filter.addEventListener("change", function () { filter.submit(); });
    var table = document.getElementById("schedulers");
    if (table) table.addEventListener("click", onSchedulerClick);
    followLogs();
  });
  document.addEventListener("htmx:afterSettle", function () { localize(document); });
  window.funnelops = { localize: localize, postJSON: postJSON };
})();
