// The console's core: the token, calls to the API, streams, routing between
// pages, and the small helpers every page uses (numbers, times, charts).
// No framework and no build step: the browser runs this file as written.
"use strict";

(() => {
  const TOKEN_KEY = "eventwire.token";
  const pages = [];
  const numbers = new Intl.NumberFormat();
  const decimals = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  let current = null;
  let who = null;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** Build an element: el("a", {href: "#/x", class: "y"}, "text", child). Text is
   * always set as text, never parsed as HTML, so data cannot inject markup. */
  function el(tag, attrs, ...children) {
    const svg = ["svg", "rect", "g", "line", "text", "title", "polyline"].includes(tag);
    const node = svg
      ? document.createElementNS("http://www.w3.org/2000/svg", tag)
      : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Replace ``node``'s children, leaving out null, undefined and false. */
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
    return node;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function headers() {
    const t = token();
    return t ? { authorization: "Bearer " + t } : {};
  }

  /** A same-origin path with its query; empty and unset parameters are left out. */
  function url(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined && value !== false) {
        query.set(key, String(value));
      }
    }
    const text = query.toString();
    return text ? path + "?" + text : path;
  }

  async function failure(response) {
    let code = 0;
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      code = body.code || 0;
      message = body.message || message;
    } catch (_) {
      // not a google.rpc.Status: keep the HTTP status line
    }
    if (response.status === 401) signOut("The server did not accept the token: " + message);
    return new ApiError(response.status, code, message);
  }

  async function api(path, params, init) {
    const response = await fetch(url(path, params), {
      ...(init || {}),
      headers: { ...headers(), ...((init && init.headers) || {}) },
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) throw await failure(response);
    return response.json();
  }

  /** POST a JSON body (the mutating routes); the reply's JSON. */
  function post(path, body) {
    return api(path, null, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
  }

  /** Read a streamed reply line by line until it ends or ``signal`` aborts.
   * fetch rather than EventSource: EventSource cannot send the authorization
   * header, and the token must not travel in the URL or a cookie. */
  async function lines(path, params, signal, onLine) {
    const response = await fetch(url(path, params), {
      headers: headers(),
      credentials: "omit",
      cache: "no-store",
      signal,
    });
    if (!response.ok) throw await failure(response);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
      const parts = rest.split("\n");
      rest = parts.pop();
      for (const line of parts) onLine(line);
    }
  }

  /** Server-Sent Events over fetch: calls onEvent(type, data, id) per event. */
  async function sse(path, params, signal, onEvent) {
    let type = "message";
    let data = [];
    let id = "";
    await lines(path, params, signal, (raw) => {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        if (data.length) onEvent(type, data.join("\n"), id);
        type = "message";
        data = [];
        id = "";
        return;
      }
      if (line.startsWith(":")) return;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    });
  }

  function num(value) {
    return numbers.format(Number(value));
  }

  function dec(value) {
    return decimals.format(Number(value));
  }

  function utc(ms) {
    return new Date(Number(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  /** A time in the viewer's zone, its UTC form on hover (and for machines);
   * ``clock`` shows the time of day alone (the live tail's rows). */
  function time(ms, clock) {
    const date = new Date(Number(ms));
    const text = clock ? date.toLocaleTimeString() : date.toLocaleString();
    return el("time", { datetime: date.toISOString(), title: utc(ms) }, text);
  }

  function bytes(value) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let v = Number(value);
    let unit = 0;
    while (v >= 1024 && unit < units.length - 1) {
      v /= 1024;
      unit += 1;
    }
    return (unit ? dec(v) : num(v)) + " " + units[unit];
  }

  /** A bar chart as SVG: bars [{label, title, parts: [{value, series}]}] stacked by
   * series (colours by class, .s0 to .s5). The numbers are in a table beside it. */
  function barChart(bars, description) {
    // Drawn at the width it is shown at, so its text stays readable on a phone.
    const main = document.getElementById("main");
    const width = Math.max(300, Math.min(1400, (main && main.clientWidth) || 640) - 40);
    const height = 220;
    const pad = { left: 56, bottom: 22, top: 8 };
    const top = Math.max(1, ...bars.map((b) => b.parts.reduce((s, p) => s + p.value, 0)));
    const step = (width - pad.left) / Math.max(bars.length, 1);
    const scale = (height - pad.bottom - pad.top) / top;
    const svg = el("svg", {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart",
      role: "img",
      "aria-label": description,
    });
    svg.append(el("title", {}, description));
    const base = height - pad.bottom;
    svg.append(el("line", { x1: pad.left, x2: width, y1: base, y2: base, class: "axis" }));
    svg.append(el("text", { x: pad.left - 6, y: pad.top + 10, class: "tick", "text-anchor": "end" }, dec(top)));
    svg.append(el("text", { x: pad.left - 6, y: base, class: "tick", "text-anchor": "end" }, "0"));
    bars.forEach((bar, i) => {
      let y = base;
      const g = el("g", {});
      g.append(el("title", {}, bar.title));
      for (const part of bar.parts) {
        const h = part.value * scale;
        if (h <= 0) continue;
        y -= h;
        g.append(el("rect", {
          x: pad.left + i * step + step * 0.1,
          y,
          width: Math.max(step * 0.8, 1),
          height: h,
          class: "bar s" + part.series,
        }));
      }
      svg.append(g);
      const every = Math.ceil(bars.length / Math.max(2, Math.floor(width / 110)));
      if (i % every === 0) {
        svg.append(el("text", { x: pad.left + i * step, y: height - 6, class: "tick" }, bar.label));
      }
    });
    return svg;
  }

  /** Ask before a mutating action; resolves true when the viewer confirms. */
  function confirmAction(text) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      const ok = document.getElementById("confirm-ok");
      const cancel = document.getElementById("confirm-cancel");
      const done = (answer) => {
        ok.removeEventListener("click", yes);
        cancel.removeEventListener("click", no);
        dialog.removeEventListener("cancel", no);
        dialog.close();
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      ok.addEventListener("click", yes);
      cancel.addEventListener("click", no);
      dialog.addEventListener("cancel", no);
      dialog.showModal();
      cancel.focus();
    });
  }

  /** Whether the token has ``scope``: pages leave out controls it may not use
   * (the server refuses them anyway, with 403). */
  function can(scope) {
    return Boolean(who && who.scopes.includes(scope));
  }

  /** Whether this server serves a gateway route ("POST /v1/destinations:pause"):
   * pages for features a server lacks stay out of the navigation. */
  function serves(route) {
    return Boolean(who && who.routes.includes(route));
  }

  /** A button for a mutating action, or null when the token lacks ``admin``.
   * It asks ``question`` first, then runs ``act()`` (which calls the route),
   * and says what came of it in ``report`` (an element with role=status);
   * ``safe`` (resume, say) draws it plain rather than red. */
  function action(label, question, act, report, safe) {
    if (!can("admin")) return null;
    const style = safe ? "secondary" : "danger"; // red for what loses or repeats data
    const button = el("button", { type: "button", class: style, "data-mutates": "" }, label);
    button.addEventListener("click", async () => {
      if (!(await confirmAction(question))) return;
      button.disabled = true;
      try {
        report.textContent = (await act()) || label + ": done.";
      } catch (error) {
        report.replaceChildren(errorBox(error));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function errorBox(error) {
    return el("p", { class: "error", role: "alert" }, String(error.message || error));
  }

  function register(page) {
    pages.push(page);
    pages.sort((a, b) => a.order - b.order);
  }

  function drawNav(active) {
    const nav = document.getElementById("nav");
    nav.replaceChildren(
      ...pages
        .filter((p) => (!p.needs || can(p.needs)) && (!p.route || serves(p.route)))
        .map((p) =>
          el("li", {}, el("a", { href: "#/" + p.id, "aria-current": p === active ? "page" : null }, p.title)),
        ),
    );
  }

  function drawWho() {
    const box = document.getElementById("who");
    if (!who) {
      box.replaceChildren();
      return;
    }
    const tenant = who.tenant || "default tenant";
    fill(box,
      el("span", { title: "scopes: " + who.scopes.join(", ") }, tenant + " · " + who.scopes.join(", ")),
      token() ? el("button", { type: "button", class: "link", onclick: () => signOut("") }, "Forget token") : null,
    );
  }

  function route(focus) {
    if (!who) return;
    const parts = (location.hash || "#/live").slice(2).split("/");
    const shown = pages.filter((p) => !p.route || serves(p.route));
    const page = shown.find((p) => p.id === parts[0]) || shown[0];
    if (current && current.cleanup) current.cleanup();
    const main = document.getElementById("main");
    main.replaceChildren();
    document.title = page.title + " · eventwire console";
    drawNav(page);
    const cleanup = page.render(main, parts.slice(1).map(decodeURIComponent));
    current = { page, cleanup };
    if (focus) main.focus();
  }

  function signIn(message) {
    if (current && current.cleanup) current.cleanup();
    current = null;
    who = null;
    drawWho();
    document.getElementById("nav").replaceChildren();
    const main = document.getElementById("main");
    const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
    const form = el(
      "form",
      { class: "signin", onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem(TOKEN_KEY, input.value.trim()); start(true); } },
      el("h1", {}, "Open the console"),
      message ? el("p", { class: "error", role: "alert" }, message) : null,
      el("p", {}, "The server asks for a token. It is kept in this tab's session storage only (gone when the tab closes) and sent as the authorization header; never in a URL or a cookie."),
      el("label", { for: "token" }, "API token"),
      input,
      el("button", { type: "submit" }, "Open"),
    );
    main.replaceChildren(form);
    input.focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn(message);
  }

  async function start(focus) {
    try {
      who = await api("/console/api/whoami");
    } catch (error) {
      if (error.status === 401) return; // failure() already asked for a token
      signIn(error.status === 403 ? "This token may not read: " + error.message : String(error.message));
      return;
    }
    if (!who.scopes.includes("read")) {
      const scopes = who.scopes.join(", ");
      signOut(`This token may not read (its scopes: ${scopes}); the console needs the read scope.`);
      return;
    }
    drawWho();
    route(Boolean(focus)); // after signing in, focus moves from the gone form to the page
  }

  window.addEventListener("hashchange", () => route(true));

  window.EW = {
    ApiError, action, api, bytes, barChart, can, confirmAction, dec, el, errorBox, fill, lines,
    num, post, register, serves, sse, start, time, url, utc,
  };
})();
