// Destinations: each relay's state, lag in rows and seconds, what it delivered,
// retried and dead-lettered; pause, resume and replay, and its dead letters
// (retry or discard). Shown only on a server that serves /v1/destinations;
// the changing controls only to an admin token, each confirmed first.
"use strict";

(() => {
  const { el, num, dec } = window.EW;
  const POLL_MS = 5000;

  function render(main, params) {
    if (params[0]) return deadLetters(main, params[0]);
    const report = el("p", { id: "dest-report", role: "status" });
    const list = el("div", { id: "dest-list", "aria-busy": "true" }, el("p", {}, "Loading…"));
    main.append(el("h1", {}, "Destinations"), report, list);
    async function load() {
      let reply;
      try {
        reply = await window.EW.api("/v1/destinations");
      } catch (error) {
        list.replaceChildren(window.EW.errorBox(error));
        return;
      }
      list.setAttribute("aria-busy", "false");
      if (!reply.destinations.length) {
        list.replaceChildren(el("p", {}, "No destinations are configured (eventwire serve --destination NAME=URL)."));
        return;
      }
      list.replaceChildren(el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Destinations" },
        el("table", { id: "dest-table" },
          el("thead", {}, el("tr", {}, ["Name", "State", "Lag", "Delivered", "Retried", "Dead letters", "Breaker", "Last error", ""]
            .map((h) => el("th", { scope: "col", class: /Delivered|Retried|Dead|Lag/.test(h) ? "num" : null }, h || el("span", { class: "visually-hidden" }, "Actions"))))),
          el("tbody", {}, reply.destinations.map((d) => row(d, report, load))))));
    }
    load();
    const timer = setInterval(load, POLL_MS);
    return () => clearInterval(timer);
  }

  function row(d, report, reload) {
    const name = d.name;
    const act = (label, question, path, body, safe) =>
      window.EW.action(label, question, async () => {
        await window.EW.post(path, body);
        reload();
        return `${label}: done for ${name}.`;
      }, report, safe);
    return el("tr", { "data-name": name },
      el("th", { scope: "row" }, name, el("br"), el("small", {}, d.url + " · " + d.carries)),
      el("td", { class: d.paused || d.state === "retrying" ? "bad" : "good" }, d.paused ? "paused" : d.state),
      el("td", { class: "num" }, `${num(d.lagRows)} rows`, el("br"), `${dec(d.lagSeconds)} s`),
      el("td", { class: "num" }, num(d.delivered)),
      el("td", { class: "num" }, num(d.retried)),
      el("td", { class: "num" }, el("a", { href: "#/destinations/" + encodeURIComponent(name) }, num(d.deadLettered))),
      el("td", {}, d.breaker),
      el("td", { class: "details" }, d.lastError || "—"),
      el("td", {}, el("div", { class: "actions" },
        d.paused
          ? act("Resume", `Resume delivering to ${name}?`, "/v1/destinations:resume", { name }, true)
          : act("Pause", `Pause ${name}? Rows wait in the store until it is resumed.`, "/v1/destinations:pause", { name }),
        act("Replay last hour", `Deliver again to ${name} everything from the last hour? The destination will see those rows twice.`,
          "/v1/destinations:replay", { name, since: Date.now() - 3600e3 }),
      )),
    );
  }

  function deadLetters(main, name) {
    const report = el("p", { id: "dl-report", role: "status" });
    const box = el("div", { id: "dl-list" }, el("p", {}, "Loading…"));
    main.append(el("p", {}, el("a", { href: "#/destinations" }, "← All destinations")), el("h1", {}, "Dead letters: " + name), report, box);
    const state = { tokens: [""], page: 0 };
    async function load() {
      let reply;
      try {
        reply = await window.EW.api("/v1/destinations:deadLetters", { name, page_size: 50, page_token: state.tokens[state.page] });
      } catch (error) {
        box.replaceChildren(window.EW.errorBox(error));
        return;
      }
      state.tokens[state.page + 1] = reply.nextPageToken;
      const all = (label, path, question, safe) => window.EW.action(label, question, async () => {
        const done = await window.EW.post(path, { name, all: true });
        state.tokens = [""];
        state.page = 0;
        load();
        return `${label}: ${num(done.count)} dead letter(s).`;
      }, report, safe);
      window.EW.fill(box,
        reply.deadLetters.length ? el("div", { class: "actions" },
          all("Retry all", "/v1/destinations:retryDeadLetters", `Deliver every dead letter of ${name} again?`, true),
          all("Discard all", "/v1/destinations:discardDeadLetters", `Discard every dead letter of ${name}? They cannot be delivered afterwards.`)) : null,
        reply.deadLetters.length
          ? el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": "Dead letters" },
            el("table", { id: "dl-table" },
              el("thead", {}, el("tr", {}, ["When", "Kind", "Name", "Attempts", "Error", "Payload"].map((h) => el("th", { scope: "col" }, h)))),
              el("tbody", {}, reply.deadLetters.map((l) => el("tr", {},
                el("td", {}, window.EW.time(l.createdAt)), el("td", {}, l.kind), el("td", {}, l.name),
                el("td", { class: "num" }, num(l.attempts)), el("td", { class: "details" }, l.error),
                el("td", { class: "details" }, l.payload.length > 200 ? l.payload.slice(0, 200) + "…" : l.payload))))))
          : el("p", {}, "No dead letters."),
        el("div", { class: "pager" },
          el("button", { type: "button", class: "secondary", disabled: state.page === 0, onclick: () => { state.page -= 1; load(); } }, "Previous page"),
          el("button", { type: "button", class: "secondary", disabled: !reply.nextPageToken, onclick: () => { state.page += 1; load(); } }, "Next page")),
      );
    }
    load();
    return null;
  }

  window.EW.register({ id: "destinations", title: "Destinations", order: 50, route: "GET /v1/destinations", render });
})();
