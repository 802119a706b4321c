// Plans: the tracking plan in force (version, when and by whom), and what it
// quarantined, grouped by event and rule with counts and samples; replay and
// discard of the quarantine for an admin token, each confirmed first. Shown
// only on a server that serves /v1/plans.
"use strict";

(() => {
  const { el, num } = window.EW;

  function pretty(document) {
    try {
      return JSON.stringify(JSON.parse(document), null, 2);
    } catch (_) {
      return document; // not JSON: shown as stored
    }
  }

  function render(main) {
    const plan = el("div", { id: "plan" }, el("p", {}, "Loading…"));
    const report = el("p", { id: "plan-report", role: "status" });
    const groups = el("div", { id: "quarantine", "aria-live": "polite" });
    const input = (id, label) => el("div", { class: "field" }, el("label", { for: id }, label), el("input", { id, name: id, type: "text", autocomplete: "off" }));
    const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      input("q_event_name", "Event name"), input("q_rule", "Rule"),
      el("div", { class: "actions" }, el("button", { type: "submit" }, "Apply filters")));
    main.append(el("h1", {}, "Tracking plan"), plan, el("h2", {}, "Quarantine"), form, report, groups);

    window.EW.api("/v1/plans").then((p) => {
      if (!Number(p.version)) {
        plan.replaceChildren(el("p", {}, "No plan is applied: every valid event is stored."));
        return;
      }
      plan.replaceChildren(
        el("dl", { class: "detail" },
          el("dt", {}, "Version"), el("dd", { id: "plan-version" }, num(p.version)),
          el("dt", {}, "Applied"), el("dd", {}, window.EW.time(p.appliedAt)),
          el("dt", {}, "By"), el("dd", {}, p.appliedBy || "—")),
        el("details", {}, el("summary", {}, "The plan document"), el("pre", { class: "details" }, pretty(p.document))));
    }, (error) => plan.replaceChildren(window.EW.errorBox(error)));

    function filter() {
      return {
        event_name: form.querySelector("#q_event_name").value.trim(),
        rule: form.querySelector("#q_rule").value.trim(),
      };
    }

    async function load() {
      const f = filter();
      let reply;
      try {
        reply = await window.EW.api("/v1/quarantine", { ...f, samples: 3 });
      } catch (error) {
        groups.replaceChildren(window.EW.errorBox(error));
        return;
      }
      const body = { filter: { eventName: f.event_name, rule: f.rule } };
      const act = (label, path, question, said, safe) => window.EW.action(label, question, async () => {
        const done = await window.EW.post(path, body);
        load();
        return said(done);
      }, report, safe);
      window.EW.fill(groups,
        el("p", {}, `${num(reply.total)} events in quarantine` + (f.event_name || f.rule ? " match the filter." : ".")),
        Number(reply.total) ? el("div", { class: "actions" },
          act("Replay", "/v1/quarantine:replay", `Check the ${num(reply.total)} quarantined events shown against the plan in force, and store those it accepts?`,
            (d) => `Replayed: ${num(d.moved)} stored, ${num(d.duplicates)} already stored, ${num(d.remaining)} still quarantined.`, true),
          act("Discard", "/v1/quarantine:discard", `Delete the ${num(reply.total)} quarantined events shown? This cannot be undone.`,
            (d) => `Discarded ${num(d.discarded)} events.`)) : null,
        reply.groups.length ? el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Violations" },
          el("table", { id: "quarantine-table" },
            el("thead", {}, el("tr", {}, ["Event", "Rule", "Count", "Samples"].map((h) => el("th", { scope: "col", class: h === "Count" ? "num" : null }, h)))),
            el("tbody", {}, reply.groups.map((g) => el("tr", {},
              el("th", { scope: "row" }, g.eventName, g.kind === "alert" ? " (alert)" : ""),
              el("td", {}, g.rule),
              el("td", { class: "num" }, num(g.count)),
              el("td", { class: "details" }, el("details", {}, el("summary", {}, `${(g.samples || []).length} samples`),
                el("ul", {}, (g.samples || []).map((s) => el("li", {},
                  window.EW.time(s.quarantinedAt), " ",
                  JSON.stringify((s.event && s.event.properties) || {}), " — ",
                  (s.violations || []).map((v) => `${v.field}: ${v.description}`).join("; "))))))))))) : null,
      );
    }
    load();
    return null;
  }

  window.EW.register({ id: "plans", title: "Plans", order: 40, route: "GET /v1/plans", render });
})();
