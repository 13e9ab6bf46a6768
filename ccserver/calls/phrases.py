"""Every sentence call control says — queue announcements, the callback offer, transfer
news, feature-code confirmations and refusals — in Mandarin (default) and English, as text
for `Prompts`. (IVR flows carry their own prompts in the flow files.)

Kept in one table so that a translation or a wording change is one edit, and so that tests
can check every phrase exists in every language.
"""

from __future__ import annotations

import math

PHRASES: dict[str, dict[str, str]] = {
    "position": {
        "zh": "您前面还有{ahead}位客户在等待，预计等待时间约{minutes}分钟。",
        "en": (
            "There are {ahead} callers ahead of you. Your expected wait is about {minutes} minutes."
        ),
    },
    "next": {
        "zh": "您是下一位，请稍候，坐席马上为您服务。",
        "en": "You are next in line. An agent will be with you shortly.",
    },
    "callback_offer": {
        "zh": "如需保留排队位置并由我们回电，请按1。继续等待请不要挂机。",
        "en": "To keep your place and be called back, press 1. To keep waiting, stay on the line.",
    },
    "callback_number": {
        "zh": "我们将回拨您的来电号码，请按1确认；如需其他号码，请按2。",
        "en": "We will call you back on this number: press 1. For another number, press 2.",
    },
    "callback_enter": {
        "zh": "请输入回电号码，以井号键结束。",
        "en": "Enter the number to call back, then press the hash key.",
    },
    "callback_confirmed": {
        "zh": "已为您保留排队位置，轮到您时我们将回电，再见。",
        "en": "Your place is kept. We will call you back when it is your turn. Goodbye.",
    },
    "overflow": {
        "zh": "正在为您转接其他坐席组，请稍候。",
        "en": "We are transferring you to another team. Please hold.",
    },
    "ivr_full": {
        "zh": "自助服务繁忙，正在为您转接人工服务。",
        "en": "Self-service is busy. We are connecting you to an agent.",
    },
    "agent_id": {"zh": "请输入工号，以井号键结束。", "en": "Enter your agent number, then hash."},
    "pin": {"zh": "请输入密码，以井号键结束。", "en": "Enter your PIN, then hash."},
    "pin_wrong": {"zh": "工号或密码错误。", "en": "Wrong agent number or PIN."},
    "logged_in": {"zh": "签入成功，您已就绪。", "en": "You are logged in and ready."},
    "logged_out": {"zh": "签出成功。", "en": "You are logged out."},
    "reason": {
        "zh": "请选择原因：休息按1，培训按2，会议按3，话后处理按4。",
        "en": "Choose a reason: break 1, training 2, meeting 3, after-call work 4.",
    },
    "not_ready": {"zh": "您已置忙。", "en": "You are not ready."},
    "ready": {"zh": "您已就绪。", "en": "You are ready."},
    "wrap_extended": {"zh": "话后处理时间已延长。", "en": "Your wrap-up time is extended."},
    "not_logged_in": {"zh": "本话机没有签入的坐席。", "en": "No agent is logged in at this phone."},
    "refused": {"zh": "操作未能完成：{why}。", "en": "That did not work: {why}."},
    "unknown_code": {"zh": "无效的功能码。", "en": "Unknown feature code."},
    "consult_failed": {
        "zh": "转接未成功，来电已回到原队列。",
        "en": "The transfer did not go through. The caller is back in their queue.",
    },
}

REFUSALS: dict[str, dict[str, str]] = {
    "agent-logged-in": {"zh": "已经签入", "en": "already logged in"},
    "phone-in-use": {"zh": "本话机已有坐席签入", "en": "another agent is at this phone"},
    "agent-logged-out": {"zh": "尚未签入", "en": "not logged in"},
    "agent-on-call": {"zh": "通话中", "en": "on a call"},
    "invalid-state": {"zh": "当前状态不允许", "en": "not possible now"},
    "rate-limited": {"zh": "尝试次数过多", "en": "too many tries"},
    "pin-invalid": {"zh": "工号或密码错误", "en": "wrong agent number or PIN"},
    "reason-unknown": {"zh": "原因无效", "en": "unknown reason"},
    "license-seats-exhausted": {"zh": "坐席许可已满", "en": "no licensed seat is free"},
    "license-grace-exhausted": {"zh": "坐席许可已满", "en": "no licensed seat is free"},
    "license-expired": {"zh": "坐席许可已过期", "en": "the license has expired"},
    "license-not-yet-valid": {"zh": "坐席许可尚未生效", "en": "the license is not valid yet"},
    "forbidden": {"zh": "本话机无监听权限", "en": "this phone may not monitor"},
    "not-talking": {"zh": "该坐席不在通话中", "en": "that agent is on no call"},
    "agent-unknown": {"zh": "没有该坐席", "en": "no such agent"},
}
"""Why a feature code was refused (an error's slug), short enough to be spoken."""


def phrase(key: str, language: str, **values: object) -> str:
    table = PHRASES[key]
    return table.get(language, table["zh"]).format(**values)


def refusal(slug: str, language: str) -> str:
    """The spoken reason for a refusal; an unknown slug is spoken as its words."""
    table = REFUSALS.get(slug)
    if table is None:
        return slug if language == "zh" else slug.replace("-", " ")
    return table.get(language, table["zh"])


def position_text(ahead: int, ewt_s: float, language: str) -> str:
    """The announcement for a caller with `ahead` callers before them."""
    if ahead <= 0:
        return phrase("next", language)
    minutes = max(1, math.ceil(ewt_s / 60))
    return phrase("position", language, ahead=ahead, minutes=minutes)
