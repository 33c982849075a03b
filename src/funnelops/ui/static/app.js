/* funnelops dashboard: times in the viewer's zone, the runs filter, Force/Pause/Resume, log following.
   Plain JavaScript, no build step. Text from the server is always inserted as text (textContent),
   never as HTML. */
(function () {
  "use strict";

  // One formatter per zone: building an Intl.DateTimeFormat per <time> (toLocaleString with
  // options does) cost most of the overview's load with a few hundred times on it.
  var formatters = {};
  function formatter(zone) {
    var key = zone || "";
    if (!formatters[key]) {
      var opts = {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", timeZoneName: "short"
      };
      if (zone) { opts.timeZone = zone; }  // a scheduler's own zone
      try { formatters[key] = new Intl.DateTimeFormat(undefined, opts); }
      catch (e) { delete opts.timeZone; formatters[key] = new Intl.DateTimeFormat(undefined, opts); }
    }
    return formatters[key];
  }

  function localize(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = formatter(el.dataset.zone).format(d);
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

  /* One outcome: #force-result's class and first line are the latest answer; every answer stays
     listed under it (two quick clicks: the run and the refusal both remain visible). */
  function outcome(kind, parts) {
    var box = document.getElementById("force-result");
    if (!box) return;
    box.className = "result " + kind;
    var latest = box.querySelector(".latest"), hist = box.querySelector("ul.history");
    if (!latest) { latest = el("div", "latest"); box.appendChild(latest); }
    if (!hist) { hist = el("ul", "history"); box.appendChild(hist); }
    latest.textContent = "";
    var li = el("li", kind);
    parts.forEach(function (p) {
      latest.appendChild(typeof p === "string" ? document.createTextNode(p) : p);
      li.appendChild(typeof p === "string" ? document.createTextNode(p) : p.cloneNode(true));
    });
    hist.insertBefore(li, hist.firstChild);
    localize(box);
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

  /* The run page's summary, steps and flows, fetched again and swapped in place (no reload: the
     log text already followed stays, and a reader's scroll position too). */
  function refreshSections() {
    return fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (resp) { return resp.ok ? resp.text() : Promise.reject(resp.status); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ["run-summary", "steps", "flows"].forEach(function (id) {
          var now = document.getElementById(id), next = fresh.getElementById(id);
          if (now && next) now.replaceWith(document.importNode(next, true));
        });
        localize(document);
      }, function () { /* the next refresh tries again */ });
  }

  /* The run page: append new log text and keep the state current until the run has ended; the
     summary, steps and flows are refreshed every few seconds meanwhile, and once at the end. */
  function followLogs() {
    var pre = document.getElementById("logs");
    if (!pre || pre.getAttribute("data-ended") === "1") return;
    var url = pre.getAttribute("data-url");
    var cursor = pre.getAttribute("data-cursor") || "";
    var delay = 1000, ticks = 0;
    function tick() {
      fetch(url + "?cursor=" + encodeURIComponent(cursor), { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (resp) { return resp.ok ? resp.json() : Promise.reject(resp.status); })
        .then(function (doc) {
          var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
          (doc.chunks || []).forEach(function (c) {
            if (c.first) pre.appendChild(document.createTextNode("==> " + c.source + " <==\n"));
            pre.appendChild(document.createTextNode(c.text));
          });
          trimLog(pre);
          if (atBottom) pre.scrollTop = pre.scrollHeight;
          cursor = doc.cursor || cursor;
          pre.setAttribute("data-cursor", cursor);
          delay = 1000;
          ticks += 1;
          if (doc.ended) {
            pre.setAttribute("data-ended", "1");
            refreshSections().then(function () { setState(doc.state); });
            return;
          }
          setState(doc.state);
          if (ticks % 5 === 0) refreshSections().then(function () { setState(doc.state); });
          window.setTimeout(tick, delay);
        }, function () { delay = Math.min(delay * 2, 10000); window.setTimeout(tick, delay); });
    }
    window.setTimeout(tick, delay);
  }

  /* A run followed for hours keeps its page light: past MAX_LOG_CHARS the oldest text goes (the
     whole log stays in `funnelops logs ID` and /api/runs/ID/logs). */
  var MAX_LOG_CHARS = 2 * 1024 * 1024;
  function trimLog(pre) {
    var text = pre.textContent;
    if (text.length <= MAX_LOG_CHARS) return;
    var keep = text.slice(text.length - MAX_LOG_CHARS / 2);
    pre.textContent = "[funnelops: older lines left out here; `funnelops logs` has the whole log]\n" + keep;
  }

  function setState(state) {
    var el_ = document.getElementById("run-state");
    if (el_ && state) { el_.textContent = state; el_.setAttribute("data-state", state); }
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
