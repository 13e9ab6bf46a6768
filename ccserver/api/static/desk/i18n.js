// The desk's words in Chinese and English; the page follows the center's `acd.language`
// until the agent switches (kept in localStorage).
export const WORDS = {
  zh: {
    title: "坐席工作台", sip: "话机", events: "事件", logout: "退出", login: "登录",
    agent_id: "工号", pin: "密码 (PIN)", device: "接听设备", device_browser: "浏览器",
    device_phone: "桌面话机", phone: "话机号", my_state: "我的状态", ready: "就绪",
    not_ready: "未就绪", extend: "延长话后 30 秒", r_break: "休息", r_training: "培训",
    r_meeting: "会议", r_acw: "话后处理", call: "来电", answer: "接听", hangup: "挂断",
    hold: "保持", unhold: "取回", mute: "静音", unmute: "取消静音", to_queue: "转队列",
    to_agent: "转坐席", blind: "直接转", attended: "咨询转", transfer: "转接",
    contacts: "近 30 天来电", c_date: "时间", c_queue: "队列", c_agent: "坐席",
    c_disposition: "处理结果", c_csat: "满意度", wrapup: "话后处理", disposition: "处理结果",
    note: "备注", save: "保存", auto_answer: "自动接听", saved: "已保存", log: "事件", up: "已连接", down: "断开",
    registered: "已注册", unregistered: "未注册", caller: "主叫号码", queue: "队列",
    waited: "已等待", ivr_path: "IVR 路径", entered: "客户输入", heard: "客户听到",
    why: "分配原因", none: "无",
    s_ready: "就绪", "s_not-ready": "未就绪", s_reserved: "振铃", s_busy: "通话中",
    "s_wrap-up": "话后处理", "s_logged-out": "未登录", s_ringing: "振铃", s_connected: "通话中",
    s_consulting: "咨询中", s_ended: "已结束", s_waiting: "排队中", held: "保持中",
    "d_bill-enquiry": "电费查询", "d_fault-reported": "故障报修", "d_new-connection": "新装业务",
    d_complaint: "投诉", d_other: "其他",
    orders: "未结工单", open_order: "建工单", account: "户号", description: "描述",
    order: "工单", k_fault: "故障报修", k_complaint: "投诉", k_business: "业务办理",
    k_enquiry: "咨询", o_new: "新建", o_dispatched: "已派工", "o_on-site": "已到现场",
    o_resolved: "已处理", overdue: "已超期", due_soon: "即将到期",
    kb: "知识库", kb_query: "输入关键词", kb_search: "搜索", kb_none: "没有找到相关文章",
    my_scores: "我的质检", refresh: "刷新", dispute: "申诉", disputed: "已申诉",
    dispute_reason: "申诉理由",
  },
  en: {
    title: "Agent desk", sip: "Phone", events: "Events", logout: "Log out", login: "Log in",
    agent_id: "Agent id", pin: "PIN", device: "Calls ring", device_browser: "in the browser",
    device_phone: "on a desk phone", phone: "Phone", my_state: "My state", ready: "Ready",
    not_ready: "Not ready", extend: "30 s more wrap-up", r_break: "Break",
    r_training: "Training", r_meeting: "Meeting", r_acw: "After-call work", call: "Call",
    answer: "Answer", hangup: "Hang up", hold: "Hold", unhold: "Resume", mute: "Mute",
    unmute: "Unmute", to_queue: "to queue", to_agent: "to agent", blind: "blind",
    attended: "attended", transfer: "Transfer", contacts: "Contacts, last 30 days",
    c_date: "When", c_queue: "Queue", c_agent: "Agent", c_disposition: "Disposition",
    c_csat: "CSAT", wrapup: "Wrap-up", disposition: "Disposition", note: "Note",
    save: "Save", saved: "saved", auto_answer: "Answer automatically", log: "Events", up: "up", down: "down",
    registered: "registered", unregistered: "not registered", caller: "Caller",
    queue: "Queue", waited: "Waited", ivr_path: "IVR path", entered: "Entered",
    heard: "Heard", why: "Why this agent", none: "none",
    s_ready: "ready", "s_not-ready": "not ready", s_reserved: "ringing", s_busy: "on a call",
    "s_wrap-up": "wrap-up", "s_logged-out": "logged out", s_ringing: "ringing",
    s_connected: "connected", s_consulting: "consulting", s_ended: "ended",
    s_waiting: "waiting", held: "on hold",
    "d_bill-enquiry": "Bill enquiry", "d_fault-reported": "Fault reported",
    "d_new-connection": "New connection", d_complaint: "Complaint", d_other: "Other",
    orders: "Open work orders", open_order: "Open a work order", account: "Account",
    description: "Description", order: "Work order", k_fault: "fault",
    k_complaint: "complaint", k_business: "business", k_enquiry: "enquiry", o_new: "new",
    o_dispatched: "dispatched", "o_on-site": "on site", o_resolved: "resolved",
    overdue: "overdue", due_soon: "due soon",
    kb: "Knowledge base", kb_query: "Words to look up", kb_search: "Search",
    kb_none: "No article found",
    my_scores: "My quality scores", refresh: "Refresh", dispute: "Dispute",
    disputed: "disputed", dispute_reason: "Why you dispute it",
  },
};

let language = localStorage.getItem("desk.language") || "zh";

export function setLanguage(lang, remember) {
  language = lang in WORDS ? lang : "zh";
  if (remember) localStorage.setItem("desk.language", language);
  document.documentElement.lang = language;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

export function currentLanguage() {
  return language;
}

export function chosenLanguage() {
  return localStorage.getItem("desk.language");
}

export function t(key) {
  return WORDS[language][key] ?? WORDS.en[key] ?? key;
}
