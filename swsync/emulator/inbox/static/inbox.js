/* swsync emulator inbox: plain JavaScript, no build step, nothing fetched from elsewhere.
 *
 * One EventSource (api/events) delivers a snapshot of every message, then batches of
 * changed messages (at most ten a second). The page keeps one summary per message,
 * groups them into conversations (number pairs) and draws only the rows that are on
 * screen (a virtualized list), so 10,000 messages cost as little to show as 20.
 */
"use strict";

const API = "api/";
const ALL = "*";
const model = { msgs: new Map(), convs: [], shown: [], convKey: ALL, sid: null, query: "" };

/* ---------- small helpers ---------- */

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

function clock(ms, withMs) {
  const d = new Date(ms);
  const pad = (n, w) => String(n).padStart(w || 2, "0");
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMs ? `${t}.${pad(d.getMilliseconds(), 3)}` : t;
}

function when(ms) {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString() ? clock(ms) : d.toLocaleDateString();
}

function isInbound(m) { return m.direction === "inbound"; }
function pairOf(m) { return isInbound(m) ? [m.from, m.to] : [m.to, m.from]; }  // [phone, app]
// Sort order, newest first: negative when a is newer than b.
function newer(a, b) { return b.date - a.date || b.seq - a.seq; }

async function call(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, opts);
  const data = resp.status === 204 ? null : await resp.json();
  if (!resp.ok) throw new Error((data && data.message) || `HTTP ${resp.status}`);
  return data;
}

/* ---------- the virtualized list ---------- */

class VirtualList {
  constructor(el, rowHeight, draw, onPick, sig) {
    // sig(item): equal (===) for two items that draw the same row.
    Object.assign(this, { el, rowHeight, draw, onPick, sig, items: [], active: 0, selected: null });
    this.spacer = h("div", { class: "spacer", "aria-hidden": "true" });
    el.append(this.spacer);
    // Scroll position and height are cached (scroll events, ResizeObserver): reading
    // them from the DOM after a redraw would force a layout on every live update.
    this.top = 0;
    this.height = el.clientHeight;
    el.addEventListener("scroll", () => { this.top = el.scrollTop; this.render(); });
    el.addEventListener("keydown", (e) => this.key(e));
    el.addEventListener("click", (e) => {
      const row = e.target.closest(".vrow");
      if (row) this.pick(Number(row.dataset.index));
    });
    new ResizeObserver((entries) => {
      this.height = entries[entries.length - 1].contentRect.height;
      this.render();
    }).observe(el);
  }

  setItems(items, keyOf) {
    const activeKey = this.items[this.active] && keyOf(this.items[this.active]);
    this.items = items;
    this.keyOf = keyOf;
    const again = items.findIndex((it) => keyOf(it) === activeKey);
    this.active = again >= 0 ? again : Math.min(this.active, Math.max(items.length - 1, 0));
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    this.render();
  }

  render() {
    const { el, rowHeight, items } = this;
    const first = Math.max(0, Math.floor(this.top / rowHeight) - 4);
    const last = Math.min(items.length, Math.ceil((this.top + this.height) / rowHeight) + 4);
    const old = this.rows || new Map();
    const rows = new Map();
    for (let i = first; i < last; i++) {
      const item = items[i];
      const key = this.keyOf(item);
      const kept = old.get(key);
      // An unchanged row keeps its element: no flicker, and tests keep their references.
      const row = kept && kept.sig === this.sig(item) && kept.index === i ? kept : this.row(i, item, key);
      row.el.className = i === this.active ? "vrow active" : "vrow";
      row.el.setAttribute("aria-selected", String(key === this.selected));
      row.el.setAttribute("aria-setsize", items.length);
      rows.set(key, row);
    }
    this.rows = rows;
    const wanted = [this.spacer, ...[...rows.values()].map((r) => r.el)];
    if (wanted.length !== el.children.length || wanted.some((node, i) => el.children[i] !== node)) {
      el.replaceChildren(...wanted);
    }
    if (items.length) el.setAttribute("aria-activedescendant", `${el.id}-row-${this.active}`);
    else el.removeAttribute("aria-activedescendant");
  }

  row(i, item, key) {
    const el = h("div", {
      role: "option", id: `${this.el.id}-row-${i}`, "data-index": i, "data-key": key, "aria-posinset": i + 1,
    });
    el.style.top = `${i * this.rowHeight}px`;
    el.style.height = `${this.rowHeight}px`;
    this.draw(el, item);
    return { el, sig: this.sig(item), index: i };
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.height / this.rowHeight) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -Infinity, End: Infinity };
    if (e.key in moves) {
      e.preventDefault();
      this.moveTo(this.active + moves[e.key], true);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.pick(this.active);
    }
  }

  moveTo(index, pick) {
    if (!this.items.length) return;
    this.active = Math.max(0, Math.min(this.items.length - 1, index));
    const top = this.active * this.rowHeight;
    if (top < this.top) this.scrollTo(top);
    else if (top + this.rowHeight > this.top + this.height) this.scrollTo(top + this.rowHeight - this.height);
    if (pick) this.pick(this.active); else this.render();
  }

  scrollTo(top) {
    this.el.scrollTop = top;
    this.top = this.el.scrollTop;  // clamped by the browser
  }

  pick(index) {
    const item = this.items[index];
    if (item === undefined) return;
    this.active = index;
    this.selected = this.keyOf(item);
    this.onPick(item);
    this.render();
  }
}

/* ---------- rows ---------- */

function drawConversation(row, c) {
  if (c.key === ALL) {
    row.append(h("div", { class: "line1" }, h("span", { class: "who", text: "All messages" }),
      h("span", { class: "when", text: c.count ? when(c.last.date) : "" })),
      h("div", { class: "line2" }, h("span", { class: "text", text: `${c.count} message${c.count === 1 ? "" : "s"}` })));
    return;
  }
  row.append(
    h("div", { class: "line1" }, h("span", { class: "who", text: c.phone }),
      h("span", { class: "muted-small", text: `↔ ${c.app}` }), h("span", { class: "when", text: when(c.last.date) })),
    h("div", { class: "line2" }, h("span", { class: "text", text: snippet(c.last) }),
      h("span", { class: "count", text: String(c.count), "aria-label": `${c.count} messages` })));
}

function snippet(m) {
  const media = m.media.length ? `[${m.media.length} media] ` : "";
  return (isInbound(m) ? "← " : "→ ") + media + (m.body || "");
}

function stateBadge(m) {
  return h("span", { class: `badge s-${m.status}`, text: m.reason ? `${m.status}: ${m.reason}` : m.status });
}

function drawMessage(row, m) {
  const dir = isInbound(m) ? "from the phone" : "to the phone";
  row.append(
    h("div", { class: "line1" },
      h("span", { class: isInbound(m) ? "badge dir-in" : "badge dir-out", text: isInbound(m) ? "← in" : "→ out", title: dir }),
      h("span", { class: "who", text: `${m.from} → ${m.to}` }), stateBadge(m),
      h("span", { class: "when", text: clock(m.date) })),
    h("div", { class: "line2" }, h("span", { class: "text", text: snippet(m) }),
      h("span", { text: `${m.segments} seg` })));
}

/* ---------- derived lists ---------- */

function matches(m, q) {
  return !q || m.to.includes(q) || m.from.includes(q) || (m.body || "").toLowerCase().includes(q);
}

function derive() {
  const q = model.query;
  const groups = new Map();
  const all = { key: ALL, count: 0, last: null };
  const shown = [];
  for (const m of model.msgs.values()) {
    if (!matches(m, q)) continue;
    const [phone, app] = pairOf(m);
    const key = `${phone}|${app}`;
    let c = groups.get(key);
    if (!c) groups.set(key, (c = { key, phone, app, count: 0, last: m, context: null }));
    c.count++;
    if (newer(m, c.last) < 0) c.last = m;
    // Reply on the context the app last received this phone on.
    if (isInbound(m) && (!c.contextFrom || newer(m, c.contextFrom) < 0)) { c.context = m.context; c.contextFrom = m; }
    all.count++;
    if (!all.last || newer(m, all.last) < 0) all.last = m;
    if (model.convKey === ALL || model.convKey === key) shown.push(m);
  }
  const convs = [...groups.values()].sort((a, b) => newer(a.last, b.last));
  model.convs = [all, ...convs];
  model.shown = shown.sort(newer);
  model.groups = groups;
}

let pending = false;
function refresh() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    derive();
    convList.selected = model.convKey;
    convList.setItems(model.convs, (c) => c.key);
    msgList.selected = model.sid;
    msgList.setItems(model.shown, (m) => m.sid);
    const c = model.groups.get(model.convKey);
    document.getElementById("thread-title").textContent = c ? `${c.phone} ↔ ${c.app}` : "All messages";
    document.getElementById("conv-count").textContent = `(${model.convs.length - 1})`;
  });
}

/* ---------- detail pane ---------- */

function field(dl, name, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(h("dt", { text: name }), h("dd", {}, value));
}

function timeline(d) {
  const start = d.timeline.length ? d.timeline[0].t : 0;
  return h("ol", { class: "timeline", "aria-label": "State timeline" }, ...d.timeline.map((e) =>
    h("li", { "data-state": e.state },
      h("span", { class: `badge s-${e.state}`, text: e.state }),
      h("time", { datetime: e.at, text: clock(e.t * 1000, true) }),
      h("span", { class: "mono", text: e.t > start ? `+${Math.round((e.t - start) * 1000)} ms` : "" }),
      e.reason ? h("span", { class: "reason", text: `reason: ${e.reason}${e.error_code ? ` (error ${e.error_code})` : ""}` }) : null)));
}

function webhooks(d) {
  if (!d.webhooks.length) return h("p", { class: "muted", text: "No webhook was posted for this message." });
  const rows = d.webhooks.map((w) => h("tr", {},
    h("td", { text: w.kind === "inbound" ? "inbound" : `status: ${w.state}` }),
    h("td", { class: "url", text: w.url }),
    h("td", { class: w.status && w.status < 300 ? "nowrap http-ok" : "nowrap http-bad", text: w.status ? `HTTP ${w.status}` : (w.error || "no answer") }),
    h("td", { class: "mono nowrap", text: `${clock(Date.parse(w.at), true)}`, title: `answered in ${w.duration_ms} ms` },
      h("br"), h("span", { text: `${w.duration_ms} ms` }))));
  return h("table", {}, h("caption", { class: "sr", text: "Webhooks posted" }),
    h("thead", {}, h("tr", {}, h("th", { text: "What" }), h("th", { text: "URL" }), h("th", { text: "Answer" }), h("th", { text: "Sent at" }))),
    h("tbody", {}, ...rows));
}

function media(d) {
  if (!d.media_items.length) return null;
  return h("div", { class: "thumbs" }, ...d.media_items.map((m, i) => h("a", { href: m.url, target: "_blank", rel: "noopener noreferrer" },
    m.content_type.startsWith("image/")
      ? h("img", { src: m.url, alt: `Media ${i + 1} (${m.content_type})`, loading: "lazy", referrerpolicy: "no-referrer" })
      : h("span", { text: `Media ${i + 1} (${m.content_type})` }))));
}

function renderDetail(d) {
  const pane = document.getElementById("detail");
  const dl = h("dl");
  field(dl, "From", d.from);
  field(dl, "To", d.to);
  field(dl, "Direction", d.direction);
  field(dl, "Status", stateBadge({ status: d.status, reason: d.reason }));
  field(dl, "Error", d.error_code ? `${d.error_code} ${d.error_message || ""}` : null);
  field(dl, "Segments", `${d.num_segments}${d.encoding ? ` (${d.encoding}, ${d.units} units)` : ""}`);
  field(dl, "Context", d.context);
  field(dl, "Tags", d.tags.length ? d.tags.join(", ") : null);
  field(dl, "Origin", d.origin);
  field(dl, "Price", d.price !== null ? `${d.price} USD` : null);
  field(dl, "SID", h("span", { class: "mono", text: d.sid }));
  pane.replaceChildren(
    h("h2", { id: "detail-title", text: `Message ${isInbound(d) ? "from" : "to"} ${isInbound(d) ? d.from : d.to}` }),
    h("section", { "aria-label": "Body" }, h("p", { class: "body", text: d.body || "(no text)" }), media(d)),
    h("section", { "aria-label": "Fields" }, dl),
    h("section", { "aria-labelledby": "tl-title" }, h("h3", { id: "tl-title", text: "State timeline" }), timeline(d)),
    h("section", { "aria-labelledby": "wh-title" }, h("h3", { id: "wh-title", text: "Webhooks" }), webhooks(d)));
}

let detailWanted = null;
async function loadDetail(sid) {
  detailWanted = sid;
  try {
    const d = await call("GET", `messages/${encodeURIComponent(sid)}`);
    if (detailWanted === sid) renderDetail(d);
  } catch (err) {
    if (detailWanted === sid) document.getElementById("detail").replaceChildren(
      h("h2", { id: "detail-title", text: "Message" }), h("p", { class: "muted", text: `Gone: ${err.message}` }));
  }
}

/* ---------- live updates ---------- */

function setLive(on, text) {
  const el = document.getElementById("live");
  el.className = on ? "on" : "off";
  el.textContent = text;
}

function connect() {
  const source = new EventSource(API + "events");
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    model.msgs = new Map(data.messages.map((m) => [m.sid, m]));
    showFaults(data.faults);
    setLive(true, `Live · ${model.msgs.size} messages`);
    refresh();
    if (model.sid) loadDetail(model.sid);
  });
  source.addEventListener("update", (e) => {
    const data = JSON.parse(e.data);
    if (data.reset) model.msgs.clear();
    const fields = data.fields;
    const changed = data.rows.map((row) => {
      const m = {};
      for (let i = 0; i < fields.length; i++) m[fields[i]] = row[i];
      return m;
    });
    for (const m of changed) model.msgs.set(m.sid, m);
    for (const sid of data.deleted) model.msgs.delete(sid);
    setLive(true, `Live · ${model.msgs.size} messages`);
    refresh();
    if (model.sid && (data.reset || data.deleted.includes(model.sid) || changed.some((m) => m.sid === model.sid))) {
      loadDetail(model.sid);
    }
  });
  source.onerror = () => setLive(false, "Reconnecting…");
}

/* ---------- compose, search, controls ---------- */

function fillCompose(c) {
  if (!c || c.key === ALL) return;
  document.getElementById("compose-from").value = c.phone;
  document.getElementById("compose-to").value = c.app;
  if (c.context) document.getElementById("compose-context").value = c.context;
}

async function sendCompose(e) {
  e.preventDefault();
  const val = (id) => document.getElementById(id).value.trim();
  const status = document.getElementById("compose-status");
  const body = { from: val("compose-from"), to: val("compose-to"), body: val("compose-body"), context: val("compose-context") || "default" };
  if (val("compose-media")) body.media = [val("compose-media")];
  try {
    const r = await call("POST", "inbound", body);
    status.textContent = `Sent as ${body.from} (${r.sid})`;
    document.getElementById("compose-body").value = "";
    document.getElementById("compose-media").value = "";
  } catch (err) {
    status.textContent = `Not sent: ${err.message}`;
  }
}

function showFaults(faults) {
  if (!faults) return;
  for (const input of document.querySelectorAll("[data-fault]")) {
    const name = input.dataset.fault;
    if (!(name in faults)) continue;
    if (input.type === "checkbox") input.checked = Boolean(faults[name]);
    else if (document.activeElement !== input) input.value = faults[name] === null ? "" : faults[name];
  }
  document.getElementById("mps-control").hidden = !("mps" in faults);
}

async function control(action) {
  const status = document.getElementById("controls-status");
  try {
    status.textContent = await action();
  } catch (err) {
    status.textContent = `Failed: ${err.message}`;
  }
}

function setupControls() {
  for (const input of document.querySelectorAll("[data-fault]")) {
    input.addEventListener("change", () => control(async () => {
      const value = input.type === "checkbox" ? input.checked : (input.value === "" ? null : Number(input.value));
      showFaults(await call("POST", "faults", { [input.dataset.fault]: value }));
      return `${input.dataset.fault} set to ${value}`;
    }));
  }
  document.getElementById("drop").onclick = () => control(async () => `Dropped ${(await call("POST", "drop-connections")).dropped} connection(s)`);
  document.getElementById("disconnect").onclick = () => control(async () => `Told ${(await call("POST", "server-disconnect", { restart: false })).disconnected} client(s) to reconnect`);
  document.getElementById("reset").onclick = () => control(async () => {
    if (!window.confirm("Forget every message, session, fault and counter?")) return "Not reset";
    await call("POST", "reset");
    showFaults(await call("GET", "faults"));
    return "Reset";
  });
}

function setup() {
  const search = document.getElementById("search");
  search.addEventListener("input", () => { model.query = search.value.trim().toLowerCase(); refresh(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "/" && !/INPUT|TEXTAREA/.test(document.activeElement.tagName)) { e.preventDefault(); search.focus(); }
  });
  document.getElementById("compose").addEventListener("submit", sendCompose);
  document.getElementById("compose-body").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) document.getElementById("compose").requestSubmit();
  });
  setupControls();
  connect();
}

const convList = new VirtualList(document.getElementById("conversations"), 56, drawConversation, (c) => {
  model.convKey = c.key;
  fillCompose(c);
  msgList.scrollTo(0);
  refresh();
}, (c) => `${c.count}|${c.last && c.last.sid}|${c.last && c.last.status}`);
const msgList = new VirtualList(document.getElementById("messages"), 56, drawMessage, (m) => {
  model.sid = m.sid;
  const c = model.groups && model.groups.get(pairOf(m).join("|"));
  fillCompose(c);
  loadDetail(m.sid);
}, (m) => m);
setup();
