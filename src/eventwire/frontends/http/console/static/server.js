// Server: what `eventwire top` shows, polled from /console/api/status (the
// gateway reads its own counters; rates are over its latest one-second window).
"use strict";

(() => {
  const { el, num, dec } = window.EW;
  const POLL_MS = 2000;
  const HISTORY = 60;

  function card(id, label) {
    return el("dl", { class: "card" }, el("dt", {}, label), el("dd", { id }, "—"));
  }

  function render(main) {
    const history = [];
    const chart = el("div", { id: "server-chart" });
    const note = el("p", { id: "server-note", role: "status" });
    main.append(
      el("h1", {}, "Server"),
      note,
      el("div", { class: "cards" },
        card("s-health", "Health"),
        card("s-store", "Storage"),
        card("s-inflight", "In-flight bytes"),
        card("s-queue", "Pipeline depth (rows)"),
        card("s-commits", "Commits/s"),
        card("s-events", "Events stored/s"),
        card("s-p50", "Commit p50 (ms)"),
        card("s-p99", "Commit p99 (ms)"),
      ),
      el("h2", {}, "Events stored per second"),
      chart,
      el("h2", {}, "Since the server started"),
      el("div", { class: "cards" },
        card("s-stored", "Events stored"),
        card("s-dups", "Duplicates"),
        card("s-alerts", "Alerts"),
        card("s-total-commits", "Commits"),
        card("s-failures", "Failed commits"),
      ),
    );
    const set = (id, text, cls) => {
      const node = main.querySelector("#" + id);
      if (!node) return;
      node.textContent = text;
      node.className = cls || "";
    };
    async function poll() {
      let s;
      try {
        s = await window.EW.api("/console/api/status");
      } catch (error) {
        note.replaceChildren(window.EW.errorBox(error));
        return;
      }
      note.textContent = s.windowSeconds ? `Rates over the last ${dec(s.windowSeconds)} s, for the whole server process (every tenant).` : "Rates appear with the next poll.";
      set("s-health", s.draining ? "draining" : s.serving ? "serving" : "not serving", s.serving && !s.draining ? "good" : "bad");
      if (s.storeUp === undefined) return;
      set("s-store", s.storeUp ? "up" : "down", s.storeUp ? "good" : "bad");
      set("s-inflight", window.EW.bytes(s.inflightBytes));
      set("s-queue", num(s.queueRows));
      const rate = (v) => (s.windowSeconds ? dec(v) : "—");
      set("s-commits", rate(s.commitsPerSecond));
      set("s-events", rate(s.eventsPerSecond));
      set("s-p50", s.commitP50Ms === null ? "—" : dec(s.commitP50Ms));
      set("s-p99", s.commitP99Ms === null ? "—" : dec(s.commitP99Ms));
      set("s-stored", num(s.eventsStored));
      set("s-dups", num(s.duplicates));
      set("s-alerts", num(s.alertsStored));
      set("s-total-commits", num(s.commits));
      set("s-failures", num(s.commitFailures), s.commitFailures ? "bad" : "");
      if (!s.windowSeconds) return;
      history.push({ at: Date.now(), value: s.eventsPerSecond });
      while (history.length > HISTORY) history.shift();
      const bars = history.map((h) => {
        const label = new Date(h.at).toLocaleTimeString();
        return { label, title: `${label}: ${dec(h.value)} events/s`, parts: [{ series: 0, value: h.value }] };
      });
      chart.replaceChildren(window.EW.barChart(bars, `Events stored per second, last ${history.length} polls`));
    }
    poll();
    const timer = setInterval(poll, POLL_MS);
    return () => clearInterval(timer);
  }

  window.EW.register({ id: "server", title: "Server", order: 90, render });
})();
