// Live: events and alerts as they commit. Events come from the console's tail
// (filtered by name and user in the store, and capped by the server at a rate a
// page can draw, with a count of what it left out), alerts from /v1/alerts:watch
// (filtered by device, type and severity on the server). The page draws at
// most DRAW_PER_SECOND rows a second; what it does not draw, or the server did
// not send, it counts and says, every second. Pausing stops both streams and keeps their cursors;
// resuming asks for what committed after them, so nothing is lost.
"use strict";

(() => {
  const { el, num } = window.EW;
  const TICK_MS = 250;
  const DRAW_PER_SECOND = 100;
  const PER_TICK = (DRAW_PER_SECOND * TICK_MS) / 1000;
  const KEEP_ROWS = 200;
  const SEVERITIES = [
    ["", "any"],
    ["SEVERITY_INFO", "info"],
    ["SEVERITY_WARNING", "warning"],
    ["SEVERITY_CRITICAL", "critical"],
  ];

  function field(id, label, attrs) {
    return el("div", { class: "field" }, el("label", { for: id }, label), el("input", { id, name: id, type: "text", autocomplete: "off", ...(attrs || {}) }));
  }

  function render(main) {
    const state = {
      running: false,
      controllers: [],
      cursors: { events: "", alerts: "" },
      filters: null,
      pending: [],
      drawn: 0,
      skipped: 0,
      second: { drawn: 0, skipped: 0, received: 0 },
      totals: { drawn: 0, skipped: 0 },
      error: "",
      timers: [],
    };
    const severity = el("select", { id: "min_severity", name: "min_severity" }, SEVERITIES.map(([v, l]) => el("option", { value: v }, l)));
    const showEvents = el("input", { id: "show_events", type: "checkbox", checked: true });
    const showAlerts = el("input", { id: "show_alerts", type: "checkbox", checked: true });
    // Its label says what it will do; no aria-pressed as well, which would contradict it.
    const pause = el("button", { type: "button", id: "pause", class: "secondary" }, "Pause");
    const status = el("p", { id: "live-status", class: "status", role: "status" }, "Connecting…");
    const rate = el("p", { id: "live-rate", class: "rate" });
    const body = el("tbody", { id: "live-rows" });
    const form = el(
      "form",
      { class: "filters", id: "live-filters", onsubmit: (e) => { e.preventDefault(); restart(true); } },
      el("fieldset", {},
        el("legend", {}, "Events"),
        el("div", { class: "check" }, showEvents, el("label", { for: "show_events" }, "Show events")),
        field("event_name", "Event name"),
        field("user_id", "User"),
      ),
      el("fieldset", {},
        el("legend", {}, "Alerts"),
        el("div", { class: "check" }, showAlerts, el("label", { for: "show_alerts" }, "Show alerts")),
        field("device_id", "Device"),
        field("alert_type", "Alert type"),
        el("div", { class: "field" }, el("label", { for: "min_severity" }, "Minimum severity"), severity),
      ),
      el("div", { class: "actions" }, el("button", { type: "submit", id: "apply" }, "Apply filters")),
    );
    // On a phone the filters fold away, so the rows are on the first screen.
    const folded = window.matchMedia("(max-width: 600px)").matches;
    main.append(
      el("h1", {}, "Live"),
      el("details", { class: "fold", open: !folded }, el("summary", {}, "Filters"), form),
      el("div", { class: "actions" }, pause, status),
      rate,
      el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Live rows" },
        el("table", { class: "rows", id: "live-table" },
          el("caption", { class: "visually-hidden" }, "Events and alerts as they commit, newest first"),
          el("thead", {}, el("tr", {}, ["Time", "Kind", "Name / type", "User / device", "Details"].map((h) => el("th", { scope: "col" }, h)))),
          body,
        ),
      ),
    );

    function value(id) {
      return form.querySelector("#" + id).value.trim();
    }

    function readFilters() {
      return {
        events: showEvents.checked ? { event_name: value("event_name"), user_id: value("user_id") } : null,
        alerts: showAlerts.checked
          ? { device_id: value("device_id"), alert_type: value("alert_type"), min_severity: severity.value }
          : null,
      };
    }

    function row(item) {
      if (item.kind === "event") {
        const e = item.data.event || {};
        const props = e.properties && Object.keys(e.properties).length ? JSON.stringify(e.properties) : "";
        return el("tr", { class: "event" },
          el("td", {}, window.EW.time(item.data.receivedAt, true)),
          el("td", {}, "event"),
          el("td", {}, e.eventName),
          el("td", {}, e.userId || "—"),
          el("td", { class: "details" }, props),
        );
      }
      const a = item.data;
      const sev = (a.severity || "").replace("SEVERITY_", "").toLowerCase();
      return el("tr", { class: "alert sev-" + sev },
        el("td", {}, window.EW.time(a.receivedAt, true)),
        el("td", {}, el("span", { class: "badge sev-" + sev }, sev === "unspecified" ? "alert" : sev)),
        el("td", {}, el("a", { href: "#/alerts/" + encodeURIComponent(a.trackingId) }, a.alertType)),
        el("td", {}, a.deviceId),
        el("td", { class: "details" }, a.message || ""),
      );
    }

    function tick() {
      if (!state.pending.length) return;
      const take = state.pending.slice(-PER_TICK);
      const skip = state.pending.length - take.length;
      state.pending = [];
      state.second.skipped += skip;
      state.totals.skipped += skip;
      state.second.drawn += take.length;
      state.totals.drawn += take.length;
      const fragment = document.createDocumentFragment();
      for (let i = take.length - 1; i >= 0; i--) fragment.append(row(take[i]));
      body.prepend(fragment);
      while (body.rows.length > KEEP_ROWS) body.deleteRow(-1);
    }

    function report() {
      const s = state.second;
      rate.dataset.skippedPerSecond = String(s.skipped);
      rate.dataset.skippedTotal = String(state.totals.skipped);
      rate.dataset.drawnTotal = String(state.totals.drawn);
      if (s.skipped) {
        rate.textContent = `${num(s.received)} rows arrived in the last second; ${num(s.drawn)} drawn, ${num(s.skipped)} skipped (this page draws at most ${num(DRAW_PER_SECOND)} a second). Skipped since start: ${num(state.totals.skipped)}.`;
        rate.className = "rate warn";
      } else {
        rate.textContent = `${num(s.received)} rows in the last second, all drawn.` + (state.totals.skipped ? ` Skipped since start: ${num(state.totals.skipped)}.` : "");
        rate.className = "rate";
      }
      state.second = { drawn: 0, skipped: 0, received: 0 };
    }

    function receive(kind, data, cursor) {
      state.cursors[kind] = cursor || state.cursors[kind];
      state.pending.push({ kind: kind === "events" ? "event" : "alert", data });
      state.second.received += 1;
    }

    function describe() {
      if (!state.running) {
        status.textContent = "Paused. Resume continues right after the last row received; nothing committed meanwhile is lost.";
        return;
      }
      const f = state.filters;
      const parts = [];
      if (f.events) parts.push("events" + (f.events.event_name ? ` named “${f.events.event_name}”` : "") + (f.events.user_id ? ` of user “${f.events.user_id}”` : ""));
      if (f.alerts) parts.push("alerts" + (f.alerts.device_id ? ` of device “${f.alerts.device_id}”` : "") + (f.alerts.alert_type ? ` of type “${f.alerts.alert_type}”` : "") + (f.alerts.min_severity ? ` at least ${f.alerts.min_severity.replace("SEVERITY_", "").toLowerCase()}` : ""));
      status.textContent = (state.error ? state.error + " " : "") + (parts.length ? "Live: " + parts.join(" and ") + "." : "Nothing selected: tick Show events or Show alerts.");
    }

    async function follow(kind, signal) {
      // Reconnects after a broken stream from the last cursor, with a pause.
      for (let attempt = 0; !signal.aborted; attempt++) {
        try {
          if (kind === "events") {
            await window.EW.lines("/console/api/events:tail", { ...state.filters.events, after: state.cursors.events }, signal, (line) => {
              if (!line) return;
              const item = JSON.parse(line);
              if (item.start !== undefined) {
                state.cursors.events = state.cursors.events || item.start;
                status.dataset.events = "open"; // every commit from here on will arrive
              }
              else if (item.skipped !== undefined) {
                // Rows the server did not send (over the rate a page can draw): counted as skipped.
                state.cursors.events = item.cursor;
                state.second.received += item.skipped;
                state.second.skipped += item.skipped;
                state.totals.skipped += item.skipped;
              } else if (item.error) throw new window.EW.ApiError(0, item.error.code, item.error.message);
              else receive("events", item, item.cursor);
            });
          } else {
            if (!state.cursors.alerts) {
              state.cursors.alerts = (await window.EW.api("/console/api/alerts:now", state.filters.alerts)).cursor;
            }
            status.dataset.alerts = "open"; // the watch starts after this cursor, whenever it connects
            await window.EW.sse("/v1/alerts:watch", { ...state.filters.alerts, after: state.cursors.alerts }, signal, (type, data, id) => {
              if (type === "alert") receive("alerts", JSON.parse(data), id);
              else if (type === "error") {
                const st = JSON.parse(data);
                throw new window.EW.ApiError(0, st.code, st.message);
              }
            });
          }
          attempt = 0;
        } catch (error) {
          if (signal.aborted) return;
          if (error.status >= 400 && error.status < 500) {
            state.error = `The ${kind} stream was refused: ${error.message}`;
            describe();
            return;
          }
          state.error = `The ${kind} stream broke (${error.message}); reconnecting from where it stopped.`;
          describe();
        }
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 5000)));
      }
    }

    function stop() {
      delete status.dataset.events;
      delete status.dataset.alerts;
      for (const c of state.controllers) c.abort();
      state.controllers = [];
      state.running = false;
    }

    function restart(fresh) {
      stop();
      tick();
      if (fresh) {
        state.filters = readFilters();
        state.cursors = { events: "", alerts: "" };
        body.replaceChildren();
      }
      state.running = true;
      state.error = "";
      pause.textContent = "Pause";
      for (const kind of ["events", "alerts"]) {
        if (!state.filters[kind]) continue;
        const controller = new AbortController();
        state.controllers.push(controller);
        follow(kind, controller.signal);
      }
      describe();
    }

    pause.addEventListener("click", () => {
      if (state.running) {
        stop();
        tick();
        pause.textContent = "Resume";
        describe();
      } else {
        restart(false);
      }
    });

    state.timers.push(setInterval(tick, TICK_MS), setInterval(report, 1000));
    restart(true);
    return () => {
      stop();
      state.timers.forEach(clearInterval);
    };
  }

  window.EW.register({ id: "live", title: "Live", order: 10, render });
})();
