// The agent desk: the page is the phone (sip.js over WebSocket to Asterisk) and the screen
// (the controller's event channel and REST API, same origin, token in a header).
//
// Invariants:
// - The session token lives in sessionStorage and is only ever sent as a bearer header or
//   in the event channel's first message: never a cookie, never in a URL.
// - `lastSeq` is the last event applied; the channel resumes after it, so each event is
//   applied once. `window.desk.seqLog` keeps every seq seen, for the tests' sequence check.
import { chosenLanguage, setLanguage, t } from "/desk/i18n.js";
import { openPhone, rtpStats } from "/desk/phone.js";
import { actionLog, restClient } from "/desk/rest.js";

const $ = (id) => document.getElementById(id);
const session = {
  token: sessionStorage.getItem("desk.token"),
  agent: sessionStorage.getItem("desk.agent"),
  sip: JSON.parse(sessionStorage.getItem("desk.sip") || "null"),
};
const desk = {
  view: null, call: null, lastSeq: null, seqLog: [], gaps: 0, duplicates: 0,
  eventsUp: false, sipRegistered: false, phone: null, channel: null,
};
window.desk = desk;

// --- REST ----------------------------------------------------------------------------
const api = restClient(() => session.token, forget);
const { note, act } = actionLog($("log"), 50);

// --- log in / out ----------------------------------------------------------------------
$("login-device").addEventListener("change", () => {
  $("login-phone-row").hidden = $("login-device").value !== "phone";
});

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const device = $("login-device").value;
  const body = { agent: $("login-agent").value.trim(), pin: $("login-pin").value, device };
  if (device === "phone" && $("login-phone").value.trim()) body.phone = $("login-phone").value.trim();
  try {
    const opened = await api("POST", "/desk/session", body);
    session.token = opened.token;
    session.agent = opened.agent.id;
    session.sip = opened.sip;
    sessionStorage.setItem("desk.token", opened.token);
    sessionStorage.setItem("desk.agent", opened.agent.id);
    sessionStorage.setItem("desk.sip", JSON.stringify(opened.sip));
    if (!chosenLanguage()) setLanguage(opened.language, false);
    $("login-pin").value = "";
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  await act("logout", () => api("POST", `/agents/${session.agent}/state`, { action: "logout" }));
  await act("session", () => api("DELETE", "/desk/session"));
  forget();
});

function forget() {
  sessionStorage.clear();
  session.token = session.agent = session.sip = null;
  if (desk.channel) desk.channel.close();
  if (desk.phone) desk.phone.disconnect().catch(() => {});
  desk.phone = desk.channel = null;
  location.reload();
}

function start() {
  $("login").hidden = true;
  $("desk").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = session.agent;
  openChannel();
  if (session.sip) startPhone(session.sip);
  else setLink("sip-status", "sip-text", "off", "—");
}

// --- the event channel -----------------------------------------------------------------
let channelDelay = 500;

function openChannel() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/events`);
  desk.channel = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: session.token, after: desk.lastSeq }));
  ws.onmessage = (msg) => onEvent(JSON.parse(msg.data));
  ws.onclose = (ev) => {
    desk.eventsUp = false;
    setLink("events-status", "events-text", "down", t("down"));
    if (!session.token || desk.channel !== ws) return;
    if (ev.code === 4401) { forget(); return; }  // the session ended: log in again
    setTimeout(openChannel, channelDelay);
    channelDelay = Math.min(channelDelay * 2, 5000);
  };
}

function onEvent(event) {
  if (event.type === "error") { note(`${event.error}: ${event.message}`); return; }
  if (event.type === "snapshot") {
    desk.eventsUp = true;
    channelDelay = 500;
    setLink("events-status", "events-text", "up", t("up"));
    if (desk.lastSeq === null || event.reset) desk.lastSeq = event.seq;
    render(event.view, event.call);
    return;
  }
  if (desk.lastSeq !== null && event.seq <= desk.lastSeq) { desk.duplicates += 1; return; }
  if (desk.lastSeq !== null && event.seq !== desk.lastSeq + 1) desk.gaps += 1;
  desk.lastSeq = event.seq;
  desk.seqLog.push(event.seq);
  note(`#${event.seq} ${event.type}${event.call ? " " + event.call.id : ""}`);
  if (event.order) note(orderNote(event.order));
  render(event.view, event.call, event.type);
}

// --- rendering ---------------------------------------------------------------------------
function render(view, call, type) {
  desk.view = view;
  $("state").textContent = t(`s_${view.state}`);
  $("state").className = `state ${view.state}`;
  $("reason").textContent = view.reason || "";
  $("ready").disabled = view.state === "ready";
  if (call && (view.call === call.id || view.last_call === call.id)) {
    if (type === "call.offered" || !desk.call || desk.call.id !== call.id || call.pop) showCall(call);
    desk.call = { ...desk.call, ...call, pop: call.pop || (desk.call && desk.call.pop) };
  }
  const onCall = view.call !== null;
  $("call-panel").hidden = !onCall && view.state !== "wrap-up";
  $("call-panel").classList.toggle("ringing", view.call_state === "ringing");
  $("call-state").textContent = view.call_state ? t(`s_${view.call_state}`) + (view.held ? ` · ${t("held")}` : "") : "";
  $("hold").textContent = view.held ? t("unhold") : t("hold");
  $("answer").disabled = !(view.call_state === "ringing" && desk.incoming);
  $("hangup").disabled = !onCall;
  $("wrapup").hidden = view.state !== "wrap-up" || !view.last_call;
  if (view.state === "wrap-up" && desk.call) fillDispositions(desk.call);
  wrapClock();
}

function showCall(call) {
  const pop = $("pop");
  pop.replaceChildren();
  const vars = (call.ivr && call.ivr.variables) || {};
  const entered = ((call.ivr && call.ivr.entered) || []).map((i) => `${i.node}: ${i.input}`);
  const rows = [
    ["caller", call.caller],
    ["queue", call.queue],
    ["waited", call.waited_s == null ? "" : `${Math.round(call.waited_s)} s`],
    ["ivr_path", ((call.ivr && call.ivr.path) || []).join(" → ")],
    ["entered", entered.join(", ")],
    ["heard", Object.entries(vars).map(([k, v]) => `${k}: ${v}`).join(", ")],
    ["why", call.why],
  ];
  for (const [key, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = t(key);
    const dd = document.createElement("dd");
    dd.textContent = value || t("none");
    dd.dataset.field = key;
    pop.append(dt, dd);
  }
  const body = $("contacts").querySelector("tbody");
  body.replaceChildren();
  for (const c of (call.pop && call.pop.contacts) || []) {
    const tr = document.createElement("tr");
    const when = new Date(c.arrived_at * 1000).toLocaleString();
    for (const cell of [when, c.queue, c.agent, c.disposition ? t(`d_${c.disposition}`) : c.outcome, c.survey_score]) {
      const td = document.createElement("td");
      td.textContent = cell == null ? "" : String(cell);
      tr.append(td);
    }
    body.append(tr);
  }
  $("notices").replaceChildren(...((call.pop && call.pop.notices) || []).map((n) => {
    const li = document.createElement("li");
    li.textContent = n.text;
    return li;
  }));
  $("orders").replaceChildren(...((call.pop && call.pop.orders) || []).map((o) => {
    const li = document.createElement("li");
    li.textContent = orderNote(o);
    return li;
  }));
  listArticles($("kb-suggested"), (call.pop && call.pop.articles) || []);
}

// --- the knowledge base --------------------------------------------------------------------
function listArticles(list, articles) {
  list.replaceChildren(...articles.map((a) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#";
    link.dataset.article = a.id;
    link.textContent = a.title;
    link.addEventListener("click", (ev) => { ev.preventDefault(); openArticle(a.id); });
    li.append(link);
    if (a.snippet) li.append(` — ${a.snippet}`);
    return li;
  }));
}

async function openArticle(id) {
  const article = await act("article", () => api("GET", `/knowledge/articles/${id}`));
  if (!article) return;
  $("kb-title").textContent = article.title;
  $("kb-body").textContent = article.body;
  $("kb-article").hidden = false;
}

$("kb-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("kb-query").value.trim();
  if (!q) return;
  const hits = await act("search", () => api("GET", `/knowledge/search?q=${encodeURIComponent(q)}`));
  if (hits) {
    listArticles($("kb-results"), hits);
    if (hits.length === 0) note(t("kb_none"));
  }
});

function orderNote(o) {
  const chased = o.escalation >= 2 ? ` · ${t("overdue")}` : o.escalation === 1 ? ` · ${t("due_soon")}` : "";
  return `${t("order")} ${o.id} · ${t("k_" + o.kind)} · ${t("o_" + o.state)}${chased}`;
}

function fillDispositions(call) {
  const select = $("disposition");
  const codes = call.dispositions || [];
  if (select.dataset.call === call.id) return;
  select.dataset.call = call.id;
  select.replaceChildren(...codes.map((code) => {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = t(`d_${code}`);
    return option;
  }));
  $("wrapup-saved").textContent = "";
  $("note").value = "";
}

let wrapTimer = null;
function wrapClock() {
  clearInterval(wrapTimer);
  const until = desk.view && desk.view.wrap_until;
  const tick = () => {
    $("wrap-left").textContent = until ? `${Math.max(0, Math.round(until - Date.now() / 1000))} s` : "";
  };
  tick();
  if (until) wrapTimer = setInterval(tick, 1000);
}

function setLink(id, textId, state, text) {
  $(id).dataset.state = state;
  $(textId).textContent = text;
}

// --- agent state ---------------------------------------------------------------------------
const agentState = (body) => act(body.action, () => api("POST", `/agents/${session.agent}/state`, body));
$("ready").addEventListener("click", () => agentState({ action: "ready" }));
$("not-ready").addEventListener("click", () => agentState({ action: "not-ready", reason: $("reason-pick").value }));
$("extend").addEventListener("click", () => agentState({ action: "extend-wrap-up", seconds: 30 }));

$("wrapup").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const callId = desk.view && desk.view.last_call;
  const body = { code: $("disposition").value };
  if ($("note").value.trim()) body.note = $("note").value.trim();
  const done = await act("disposition", () => api("POST", `/calls/${callId}/disposition`, body));
  if (done) $("wrapup-saved").textContent = t("saved");
});

$("order-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { kind: $("order-kind").value, description: $("order-description").value.trim() };
  if (desk.call) body.call = desk.call.id;
  if ($("order-account").value.trim()) body.account = $("order-account").value.trim();
  const order = await act("order", () => api("POST", "/orders", body));
  if (order) {
    note(orderNote(order));
    $("order-description").value = "";
  }
});

// --- my quality scores: read them, dispute one once ------------------------------------------
$("qa-mine").addEventListener("click", loadScores);

async function loadScores() {
  const scores = await act("scores", () => api("GET", "/qa/scores"));
  if (!scores) return;
  $("qa-scores").replaceChildren(...scores.map((s) => {
    const li = document.createElement("li");
    li.dataset.score = s.id;
    li.textContent = `${s.call_id} · ${s.total} / ${s.max_points}${s.comment ? " · " + s.comment : ""} `;
    if (s.disputed_at) {
      li.append(`(${t("disputed")}: ${s.dispute})`);
      return li;
    }
    const reason = document.createElement("input");
    reason.placeholder = t("dispute_reason");
    reason.maxLength = 4000;
    const send = document.createElement("button");
    send.type = "button";
    send.textContent = t("dispute");
    send.addEventListener("click", async () => {
      if (!reason.value.trim()) { reason.focus(); return; }
      const done = await act("dispute", () => api("POST", `/qa/scores/${s.id}/dispute`, { reason: reason.value.trim() }));
      if (done) loadScores();
    });
    li.append(reason, send);
    return li;
  }));
}

// --- the phone -------------------------------------------------------------------------------
function startPhone(sip) {
  const link = {
    registered: () => { desk.sipRegistered = true; setLink("sip-status", "sip-text", "up", t("registered")); },
    unregistered: () => { desk.sipRegistered = false; setLink("sip-status", "sip-text", "down", t("unregistered")); },
    down: () => { desk.sipRegistered = false; setLink("sip-status", "sip-text", "down", t("down")); },
  };
  desk.phone = openPhone(sip, {
    audio: $("remote-audio"),
    displayName: session.agent,
    note,
    wanted: (phone) => desk.phone === phone && !!session.token,
    onCall: () => {
      desk.incoming = true;
      desk.rangAt = Date.now() / 1000;
      if ($("auto-answer").checked) answer();
      else if (desk.view) render(desk.view, null);
    },
    onAnswered: () => { desk.incoming = false; note("answered"); },
    onHangup: () => { desk.incoming = false; desk.muted = false; },
    onLink: (state) => link[state](),
  });
}

desk.rtpStats = () => rtpStats(desk.phone);

const answer = () => desk.phone && desk.incoming && act("answer", () => desk.phone.answer());
const hangup = () => {
  if (desk.phone && desk.phone.session) return act("hangup", () => desk.phone.hangup());
  return null;
};
$("answer").addEventListener("click", answer);
$("hangup").addEventListener("click", hangup);
$("hold").addEventListener("click", () => {
  if (!desk.view || !desk.view.call) return;
  const path = desk.view.held ? "unhold" : "hold";
  act(path, () => api("POST", `/calls/${desk.view.call}/${path}`));
});
$("mute").addEventListener("click", () => {
  if (!desk.phone || !desk.phone.session) return;
  desk.muted = !desk.muted;
  if (desk.muted) desk.phone.mute(); else desk.phone.unmute();
  $("mute").textContent = desk.muted ? t("unmute") : t("mute");
});
$("dtmf").addEventListener("input", () => {
  const digit = $("dtmf").value;
  $("dtmf").value = "";
  if (desk.phone && desk.phone.session && /^[0-9*#]$/.test(digit)) act("dtmf", () => desk.phone.sendDTMF(digit));
});
$("transfer").addEventListener("click", () => {
  if (!desk.view || !desk.view.call) return;
  const body = { [$("xfer-kind").value]: $("xfer-target").value.trim(), mode: $("xfer-mode").value };
  act("transfer", () => api("POST", `/calls/${desk.view.call}/transfer`, body));
});

document.addEventListener("keydown", (ev) => {
  if (!ev.altKey || !session.token) return;
  const key = ev.key.toLowerCase();
  if (key === "a") { ev.preventDefault(); answer(); }
  if (key === "h") { ev.preventDefault(); hangup(); }
  if (key === "r") { ev.preventDefault(); agentState({ action: "ready" }); }
});

// --- language and start ------------------------------------------------------------------------
$("lang").addEventListener("click", () => {
  const next = document.documentElement.lang === "zh" ? "en" : "zh";
  setLanguage(next, true);
  $("lang").textContent = next === "zh" ? "EN" : "中文";
  if (desk.view) render(desk.view, desk.call);
});
setLanguage(chosenLanguage() || "zh", false);
$("lang").textContent = document.documentElement.lang === "zh" ? "EN" : "中文";
desk.ready = true;
if (session.token) start();
