// The supervisors' wallboard: queues and agents live from the event channel (the whole board
// at every change, never polled), and the supervisor's actions through the REST API.
//
// Invariants:
// - The token lives in sessionStorage and is only ever sent as a bearer header or in the
//   event channel's first message: never a cookie, never in a URL.
// - Every time shown (oldest wait, time in state, call duration) is computed from an epoch
//   the server sent (`data-since` on its cell), once a second, so the page ticks without
//   asking the server; the tick changes only those cells (what a supervisor is about to
//   click stays put), a new board redraws the tables.
// - `?tv=1` is the wall display: no controls, type scaled to the screen.
import { openPhone, rtpStats } from "/desk/phone.js";
import { actionLog, restClient } from "/desk/rest.js";

const $ = (id) => document.getElementById(id);
const WORDS = {
  zh: {
    title: "监控大屏", events: "事件", my_phone: "我的话机", tv: "电视模式", logout: "退出",
    login: "登录", token: "主管令牌", queue: "队列", waiting: "排队", oldest: "最长等待",
    in_ivr: "IVR 中", talking: "通话中", ewt: "预计等待", answered: "今日接通",
    abandoned: "今日放弃", sl_today: "今日服务水平", sl_30m: "30 分钟服务水平", agent: "坐席",
    state: "状态", in_state: "状态时长", call_queue: "通话队列", call_time: "通话时长",
    calls_today: "今日通话", actions: "操作", waiting_calls: "排队来电", monitors: "监听",
    notice: "发布停电公告", notice_text: "内容", notice_minutes: "持续（分钟）", post: "发布",
    call: "通话", play: "播放录音", up: "已连接", down: "断开", ready: "就绪",
    not_ready: "置忙", log_out: "签出", listen: "监听", whisper: "耳语", barge: "强插",
    stop: "结束", move: "转队列", head: "优先", end: "撤销", need_phone: "请先填写我的话机",
    browser_phone: "浏览器话机", registered: "已注册", unregistered: "未注册",
    "s_ready": "就绪", "s_not-ready": "未就绪", "s_reserved": "振铃", "s_busy": "通话中",
    "s_wrap-up": "话后处理", "s_logged-out": "未登录",
    order: "工单", overdue: "已超期", due_soon: "即将到期", due: "应于",
    "k_fault": "故障报修", "k_complaint": "投诉", "k_business": "业务办理", "k_enquiry": "咨询",
    qa: "质检", qa_load: "待质检录音", qa_comment: "评语", qa_submit: "提交评分", score: "评分",
    "r_queue": "队列必检", "r_csat": "差评", "r_long": "长通话", "r_random": "随机抽检",
    "r_weekly": "每周抽检",
  },
  en: {
    title: "Wallboard", events: "Events", my_phone: "My phone", tv: "TV mode", logout: "Log out",
    login: "Log in", token: "Supervisor token", queue: "Queue", waiting: "Waiting",
    oldest: "Oldest wait", in_ivr: "In IVR", talking: "Talking", ewt: "Expected wait",
    answered: "Answered today", abandoned: "Abandoned today", sl_today: "SL today",
    sl_30m: "SL 30 min", agent: "Agent", state: "State", in_state: "In state",
    call_queue: "Call queue", call_time: "Call time", calls_today: "Calls today",
    actions: "Actions", waiting_calls: "Waiting callers", monitors: "Monitoring",
    notice: "Post an outage notice", notice_text: "Text", notice_minutes: "Lasts (minutes)",
    post: "Post", call: "Call", play: "Play recording", up: "up", down: "down", ready: "Ready",
    not_ready: "Not ready", log_out: "Log out", listen: "Listen", whisper: "Whisper",
    barge: "Barge", stop: "Stop", move: "Move", head: "To head", end: "End",
    browser_phone: "Browser phone", registered: "registered", unregistered: "unregistered",
    need_phone: "Fill in my phone first", "s_ready": "Ready", "s_not-ready": "Not ready",
    "s_reserved": "Ringing", "s_busy": "Talking", "s_wrap-up": "Wrap-up",
    "s_logged-out": "Logged out",
    order: "Work order", overdue: "overdue", due_soon: "due soon", due: "due",
    "k_fault": "fault", "k_complaint": "complaint", "k_business": "business",
    "k_enquiry": "enquiry",
    qa: "Quality", qa_load: "Calls to inspect", qa_comment: "Comment", qa_submit: "Submit score",
    score: "Score", "r_queue": "queue", "r_csat": "low rating", "r_long": "long call",
    "r_random": "random", "r_weekly": "weekly",
  },
};
const board = {
  token: sessionStorage.getItem("board.token"), last: null, received: [], channel: null,
  language: localStorage.getItem("board.language"), up: false, phone: null, sip: "off",
};
window.board = board;
const tv = new URLSearchParams(location.search).get("tv") === "1";
if (tv) document.body.classList.add("tv");

const t = (key) => (WORDS[board.language || "zh"] || WORDS.zh)[key] || key;

function translate() {
  document.documentElement.lang = board.language || "zh";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang").textContent = (board.language || "zh") === "zh" ? "EN" : "中文";
}

$("lang").addEventListener("click", () => {
  board.language = (board.language || "zh") === "zh" ? "en" : "zh";
  localStorage.setItem("board.language", board.language);
  translate();
  render();
});

// --- REST ------------------------------------------------------------------------------
const api = restClient(() => board.token, forget);
const { note, act } = actionLog($("log"), 30, true);

// --- log in ----------------------------------------------------------------------------
$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  board.token = $("login-token").value.trim();
  try {
    const who = await api("GET", "/whoami");
    if (who.role === "agent") throw new Error("forbidden: the wallboard is for supervisors");
    sessionStorage.setItem("board.token", board.token);
    $("login-token").value = "";
    start();
  } catch (err) {
    board.token = null;
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", forget);

function forget() {
  sessionStorage.removeItem("board.token");
  board.token = null;
  if (board.channel) board.channel.close();
  stopBrowserPhone();
  location.reload();
}

function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  openChannel();
  refreshMonitors();
  if (localStorage.getItem("board.browserPhone") === "1") {
    $("browser-phone").checked = true;
    startBrowserPhone();
  }
}

// --- the event channel -------------------------------------------------------------------
let delay = 500;

function openChannel() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/events`);
  board.channel = ws;
  ws.onopen = () => ws.send(JSON.stringify({ token: board.token, board: true }));
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "error") { note(`${data.error}: ${data.message}`); return; }
    board.received.push({  // what arrived when, for the tests' latency figures
      at: Date.now() / 1000,
      waiting: Object.fromEntries(data.queues.map((q) => [q.name, q.waiting])),
      busy: data.agents.filter((a) => a.state === "busy").map((a) => a.id),
      alerts: data.alerts.map((a) => a.name),
    });
    if (board.received.length > 500) board.received.shift();
    board.last = data;
    if (!board.language) { board.language = data.language; translate(); }
    setLink(true);
    delay = 500;
    render();
  };
  ws.onclose = (ev) => {
    setLink(false);
    if (!board.token || board.channel !== ws) return;
    if (ev.code === 4401 || ev.code === 4403) { forget(); return; }
    setTimeout(openChannel, delay);
    delay = Math.min(delay * 2, 5000);
  };
}

function setLink(up) {
  board.up = up;
  $("events-status").dataset.state = up ? "up" : "down";
  $("events-text").textContent = t(up ? "up" : "down");
}

// --- rendering ---------------------------------------------------------------------------
const now = () => Date.now() / 1000;

function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  const s = Math.floor(seconds);
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
    : `${m}:${String(s % 60).padStart(2, "0")}`;
}

const percent = (ratio) => (ratio === null || ratio === undefined ? "—" : `${(ratio * 100).toFixed(1)}%`);

function level(value, amber, red, lowIsBad = false) {
  if (value === null || value === undefined) return "";
  if (lowIsBad) return value <= red ? "red" : value <= amber ? "amber" : "";
  return value > red ? "red" : value >= amber ? "amber" : "";
}

function cell(row, text, cls = "", key = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  if (key) td.dataset.key = key;
  row.append(td);
  return td;
}

// A cell showing the time since `since` (epoch s, or null), coloured past `amber` / `red`.
function since(row, epoch, key, amber = null, red = null) {
  const td = cell(row, "", "", key);
  if (epoch === null || epoch === undefined) { td.textContent = "—"; return td; }
  td.dataset.since = epoch;
  if (amber !== null) { td.dataset.amber = amber; td.dataset.red = red; }
  tickCell(td);
  return td;
}

function tickCell(td) {
  const seconds = now() - Number(td.dataset.since);
  td.textContent = duration(seconds);
  if (td.dataset.amber !== undefined) {
    td.className = level(seconds, Number(td.dataset.amber), Number(td.dataset.red));
  }
}

function tick() {
  $("clock").textContent = new Date().toLocaleTimeString();
  for (const td of document.querySelectorAll("td[data-since]")) tickCell(td);
}

function button(label, onClick, action = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (action) b.dataset.action = action;
  b.addEventListener("click", onClick);
  return b;
}

function render() {
  const data = board.last;
  if (!data) return;
  const th = data.thresholds;
  const queues = $("queues").tBodies[0];
  queues.replaceChildren();
  for (const q of data.queues) {
    const row = queues.insertRow();
    row.dataset.queue = q.name;
    cell(row, q.name);
    cell(row, q.waiting, level(q.waiting, th.waiting_amber, th.waiting_red), "waiting");
    since(row, q.oldest_since, "oldest", th.oldest_wait_amber_s, th.oldest_wait_red_s);
    cell(row, q.in_ivr, "", "in_ivr");
    cell(row, q.talking, "", "talking");
    cell(row, duration(q.ewt_s), "", "ewt");
    cell(row, q.today.answered, "", "answered");
    cell(row, q.today.abandoned, "", "abandoned");
    const sl = (ratio) => level(ratio, th.service_level_amber, th.service_level_red, true);
    cell(row, percent(q.today.service_level), sl(q.today.service_level), "sl_today");
    cell(row, percent(q.last_30m.service_level), sl(q.last_30m.service_level), "sl_30m");
  }
  const agents = $("agents").tBodies[0];
  agents.replaceChildren();
  for (const a of data.agents) {
    const row = agents.insertRow();
    row.dataset.agent = a.id;
    cell(row, a.name ? `${a.id} ${a.name}` : a.id);
    const state = cell(row, "", "", "state");
    const badge = document.createElement("span");
    badge.className = `state ${a.state}`;
    badge.textContent = t(`s_${a.state}`) + (a.reason ? ` (${a.reason})` : "");
    state.append(badge);
    since(row, a.since, "in_state");
    cell(row, a.call ? a.call.queue || "—" : "—", "", "call_queue");
    const talking = a.call && a.call.state === "connected";
    since(row, talking ? a.call.since : null, "call_time");
    cell(row, a.calls_today, "", "calls_today");
    const actions = cell(row, "", "controls");
    if (a.state !== "logged-out") {
      actions.append(button(t("ready"), () => agentState(a.id, { action: "ready" }), "ready"));
      actions.append(button(t("not_ready"), () => agentState(a.id, { action: "not-ready", reason: "meeting" }), "not-ready"));
      actions.append(button(t("log_out"), () => agentState(a.id, { action: "logout" }), "logout"));
    }
    if (talking) {
      for (const mode of ["listen", "whisper", "barge"]) {
        actions.append(button(t(mode), () => monitor(a.id, mode), mode));
      }
      actions.append(button(t("call"), () => showCall(a.call.id)));
    }
  }
  renderWaiting(data);
  renderBanner(data);
}

function renderWaiting(data) {
  const body = $("waiting-calls").tBodies[0];
  body.replaceChildren();
  for (const c of data.waiting_calls) {
    const row = body.insertRow();
    cell(row, c.caller || c.id);
    cell(row, c.queue || "—");
    since(row, c.queued_at, "waited");
    const to = document.createElement("select");
    for (const q of data.queues) to.append(new Option(q.name, q.name, false, q.name === c.queue));
    const actions = cell(row, "");
    actions.append(to);
    actions.append(button(t("move"), () => act("move", () => api("POST", `/calls/${c.id}/move`, { queue: to.value }))));
    actions.append(button(t("head"), () => act("head", () => api("POST", `/calls/${c.id}/move`, { head: true }))));
  }
}

function renderBanner(data) {
  const alerts = $("alerts");
  const notices = $("notices");
  alerts.replaceChildren();
  notices.replaceChildren();
  for (const a of data.alerts) {
    const li = document.createElement("li");
    li.textContent = `${a.name}${a.labels.queue ? " · " + a.labels.queue : ""}: ${a.summary}`;
    alerts.append(li);
  }
  for (const n of data.notices) {
    const li = document.createElement("li");
    li.textContent = (board.language === "en" && n.text_en) || n.text;
    const end = button(t("end"), () => act("notice", () => api("DELETE", `/notices/${n.id}`)));
    end.classList.add("controls");
    li.append(" ", end);
    notices.append(li);
  }
  const orders = $("orders");
  orders.replaceChildren();
  for (const o of data.orders) {
    const li = document.createElement("li");
    const when = new Date(o.due_at * 1000).toLocaleTimeString();
    li.textContent = `${t("order")} ${o.id} · ${t("k_" + o.kind)}${o.area ? " · " + o.area : ""}: `
      + `${t(o.escalation >= 2 ? "overdue" : "due_soon")} (${o.due_state} ${t("due")} ${when})`;
    li.className = o.escalation >= 2 ? "overdue" : "due-soon";
    orders.append(li);
  }
  $("banner").hidden = data.alerts.length === 0 && data.notices.length === 0
    && data.orders.length === 0;
}

// --- actions -------------------------------------------------------------------------------
$("my-phone").value = localStorage.getItem("board.phone") || "";
$("my-phone").addEventListener("change", () => localStorage.setItem("board.phone", $("my-phone").value.trim()));

// The browser phone: the monitor sessions "browser" rings, answered at once (nothing else
// rings it); the supervisor hears the call in the page and speaks into its microphone.
$("browser-phone").addEventListener("change", () => {
  localStorage.setItem("board.browserPhone", $("browser-phone").checked ? "1" : "0");
  if ($("browser-phone").checked) startBrowserPhone(); else stopBrowserPhone();
});

async function startBrowserPhone() {
  const sip = await act("phone", () => api("GET", "/supervision/phone"));
  if (!sip) { $("browser-phone").checked = false; return; }
  $("my-phone").value = "browser";
  $("my-phone").disabled = true;
  board.phone = openPhone(sip, {
    audio: $("monitor-audio"),
    displayName: t("title"),
    note,
    wanted: (phone) => board.phone === phone && !!board.token,
    onCall: () => act("answer", () => board.phone.answer()),
    onAnswered: () => refreshMonitors(),
    onHangup: () => refreshMonitors(),
    onLink: (state) => { board.sip = state; $("sip-text").textContent = t(state); },
  });
}

function stopBrowserPhone() {
  if (board.phone) board.phone.disconnect().catch(() => {});
  board.phone = null;
  board.sip = "off";
  $("sip-text").textContent = "";
  $("my-phone").disabled = false;
  $("my-phone").value = localStorage.getItem("board.phone") || "";
}

board.rtpStats = () => rtpStats(board.phone);

function agentState(agent, body) {
  return act(`${agent} ${body.action}`, () => api("POST", `/agents/${agent}/state`, body));
}

async function monitor(agent, mode) {
  const phone = $("my-phone").value.trim();
  if (!phone) { note(t("need_phone")); return; }
  await act(`${t(mode)} ${agent}`, () => api("POST", "/monitors", { agent, phone, mode }));
  refreshMonitors();
}

async function refreshMonitors() {
  const sessions = await act("monitors", () => api("GET", "/monitors"));
  const list = $("monitors");
  list.replaceChildren();
  for (const s of sessions || []) {
    const li = document.createElement("li");
    li.textContent = `${s.agent} · ${t(s.mode)} · ${s.phone} `;
    for (const mode of ["listen", "whisper", "barge"]) {
      if (mode !== s.mode) {
        li.append(button(t(mode), async () => {
          await act(t(mode), () => api("POST", `/monitors/${s.id}/mode`, { mode }));
          refreshMonitors();
        }));
      }
    }
    li.append(button(t("stop"), async () => {
      await act(t("stop"), () => api("DELETE", `/monitors/${s.id}`));
      refreshMonitors();
    }));
    list.append(li);
  }
}

$("notice-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const start = new Date();
  const end = new Date(start.getTime() + Number($("notice-minutes").value) * 60000);
  const body = { text: $("notice-text").value.trim(), scope: "all",
    starts_at: start.toISOString(), ends_at: end.toISOString() };
  if (await act("notice", () => api("POST", "/notices", body))) $("notice-text").value = "";
});

async function showCall(id) {
  const call = await act(`call ${id}`, () => api("GET", `/calls/${id}`));
  if (!call) return;
  $("call-view").hidden = false;
  $("call-id").textContent = id;
  $("call-summary").textContent = `${call.caller || ""} · ${call.queue || ""} · ${call.agent || ""} · ${call.state}`;
  $("play").hidden = !call.recording;
  $("player").hidden = true;
  $("play").onclick = async () => {
    const response = await fetch(`/api/v1/calls/${id}/recording`, { headers: { Authorization: `Bearer ${board.token}` } });
    if (!response.ok) { note(`recording: ${response.status}`); return; }
    $("player").src = URL.createObjectURL(await response.blob());
    $("player").hidden = false;
    $("player").play().catch(() => {});
  };
}

// --- quality inspection: the queue sampling filled, the form, a score -------------------------
const qa = { form: null, call: null };

$("qa-load").addEventListener("click", loadQa);

async function loadQa() {
  qa.form = qa.form || await act("qa form", () => api("GET", "/qa/form"));
  const queue = await act("qa queue", () => api("GET", "/qa/queue"));
  if (!qa.form || !queue) return;
  const body = $("qa-queue").querySelector("tbody");
  body.replaceChildren();
  for (const item of queue) {
    const row = body.insertRow();
    row.dataset.call = item.call_id;
    cell(row, item.call_id);
    cell(row, item.agent);
    cell(row, t("r_" + item.rule));
    const actions = cell(row, "");
    actions.append(button(t("play"), () => showCall(item.call_id), "play"));
    actions.append(button(t("score"), () => openScore(item), "score"));
  }
}

function openScore(item) {
  qa.call = item.call_id;
  $("qa-call").textContent = `${item.call_id} · ${item.agent}`;
  $("qa-result").textContent = "";
  $("qa-comment").value = "";
  const sections = $("qa-sections");
  sections.replaceChildren();
  for (const section of qa.form.sections) {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = `${section.title} (${section.points})`;
    set.append(legend);
    for (const item of section.items) set.append(qaInput("checkbox", `${section.id}.${item.id}`, `${item.text} +${item.points}`));
    for (const item of section.deductions) set.append(qaInput("number", `${section.id}.${item.id}`, `${item.text} −${item.points}`));
    sections.append(set);
  }
  $("qa-form").hidden = false;
}

function qaInput(type, id, text) {
  const label = document.createElement("label");
  const input = document.createElement("input");
  input.type = type;
  input.dataset.qa = id;
  if (type === "number") { input.min = "0"; input.max = "9"; input.value = "0"; input.size = 2; }
  label.append(input, ` ${text}`);
  return label;
}

$("qa-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const ticked = [...document.querySelectorAll("#qa-sections input[type=checkbox]:checked")].map((i) => i.dataset.qa);
  const deducted = [];
  for (const input of document.querySelectorAll("#qa-sections input[type=number]")) {
    for (let n = 0; n < Number(input.value); n += 1) deducted.push(input.dataset.qa);
  }
  const body = { call: qa.call, ticked, deducted };
  if ($("qa-comment").value.trim()) body.comment = $("qa-comment").value.trim();
  const score = await act("score", () => api("POST", "/qa/scores", body));
  if (score) {
    $("qa-result").textContent = `${score.total} / ${score.max_points}`;
    loadQa();
  }
});

// --- start -----------------------------------------------------------------------------------
translate();
setInterval(tick, 1000);
if (board.token) start();
else $("login").hidden = false;
