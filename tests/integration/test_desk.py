"""The agent desk in Debian's headless Chromium against the real stack: the page logs in,
registers its WebRTC phone with Asterisk, rings with the screen pop of a caller who went
through the 95598 IVR, and talks both ways.

Audio is measured, not assumed. Chromium's microphone is a 1000 Hz tone (a WAV the test
makes), music on hold is a 440 Hz tone (the stack's MOH directory holds only that), and the
caller is SIPp for its signalling with a Python RTP phone for its media
(`rtp_phone.RtpPhone`, sending 600 Hz): the caller hears 1000 Hz while talking and 440 Hz
on hold, and the page's `getStats()` shows packets both ways.

Screenshots go to `tests/artifacts/desk/` (idle, ringing with the pop, in call, wrap-up).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import statistics
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from ccserver import tls
from ccserver.loadtest import privstack
from ccserver.stack.procs import wait_until
from tests.integration import browser as browser_mod
from tests.integration.browser import artifact, chromium, console, js, tone
from tests.integration.conftest import LiveStack, free_port, start_stack
from tests.integration.rtp_phone import Heard, RtpPhone

pytestmark = pytest.mark.integration

DESK_AGENT = "1002"  # logs in at the page
PHONE_AGENT = "1001"  # a SIPp UAS, for transfers
ACCOUNT = "1000000001"
MIC_HZ, MOH_HZ, CALLER_HZ = 1000.0, 440.0, 600.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    tmp = tmp_path_factory.mktemp("desk")
    moh = tmp / "moh"
    moh.mkdir()
    tone(moh / "tone.wav", MOH_HZ, 8000)
    port = free_port()
    acd, ivr = privstack.ivr_center(f"http://127.0.0.1:{port}", survey=False)
    for queue in acd["queues"]:
        queue["wrap_up_s"] = 120.0  # the desk's agent closes its call in wrap-up
    acd["entry"] = {"95599": "general"}
    # Every agent starts logged in at its desk phone: the desk's agent moves to the page
    # when it logs in there.
    with privstack.billing_demo(port):
        yield from start_stack(
            tmp,
            {"answer": [PHONE_AGENT], "spare": [DESK_AGENT]},
            acd=acd,
            ivr=ivr,
            hotline=["95598", "95599"],
            asterisk={"moh_dir": str(moh)},
            ring_timeout_s=15,  # a person, not a SIPp UAS, answers in the page
        )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    tmp = tmp_path_factory.mktemp("chromium")
    with chromium(tmp / "profile", mic=tone(tmp / "mic.wav", MIC_HZ, 48000)) as driver:
        yield driver


# --- helpers ---------------------------------------------------------------------------------
def desk_url(live: LiveStack) -> str:
    return tls.controller_url(live.config, "/desk/")


def wait_js(driver: WebDriver, expression: str, timeout: float = 20.0) -> Any:
    return browser_mod.wait_js(driver, expression, timeout, page_state)


def page_state(driver: WebDriver) -> str:
    """What the page shows of itself, and its console, for a failing wait."""
    shown = js(
        driver,
        "JSON.stringify({view: window.desk && window.desk.view, call: window.desk && "
        "window.desk.call, up: window.desk && window.desk.eventsUp, sip: window.desk && "
        "window.desk.sipRegistered, log: document.getElementById('log').innerText, login: "
        "document.getElementById('login-error').textContent})",
    )
    return f"{shown}\nconsole: {console(driver)}"


def _artifact(name: str, data: dict[str, Any]) -> None:
    artifact("desk", name, data)


def shot(driver: WebDriver, name: str) -> None:
    browser_mod.shot(driver, "desk", name)


def click(driver: WebDriver, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def choose(driver: WebDriver, select_id: str, value: str) -> None:
    """Pick an option of a select, as a change by the user."""
    driver.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('change'));",
        select_id,
        value,
    )


def log_in(driver: WebDriver, live: LiveStack, agent: str = DESK_AGENT) -> None:
    driver.get(desk_url(live))
    wait_js(driver, "window.desk && window.desk.ready")
    if js(driver, "window.desk.eventsUp"):
        return
    driver.find_element(By.ID, "login-agent").send_keys(agent)
    driver.find_element(By.ID, "login-pin").send_keys(live.secrets().agent_pins[agent])
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait_js(driver, "window.desk.eventsUp && window.desk.sipRegistered")


def state(driver: WebDriver) -> str:
    return str(js(driver, "window.desk.view && window.desk.view.state"))


def ready(driver: WebDriver) -> None:
    click(driver, "ready")
    wait_js(driver, "window.desk.view.state === 'ready'")


def heard(phone: RtpPhone, seconds: float = 1.5) -> Heard:
    """What the caller heard in the last half second, after waiting `seconds`."""
    time.sleep(seconds)
    return phone.heard(time.time() - 0.5)


def rtp(driver: WebDriver) -> dict[str, int]:
    return dict(driver.execute_async_script("window.desk.rtpStats().then(arguments[0]);"))


def record(live: LiveStack, call_id: str) -> dict[str, Any]:
    raw = live.stack.redis_client().get(f"ccserver:call:{call_id}")
    assert raw is not None, call_id
    return dict(json.loads(raw))


def hang_up_in_page(driver: WebDriver) -> None:
    click(driver, "hangup")
    wait_js(driver, "window.desk.view.state === 'wrap-up'")


def dispose(driver: WebDriver, code: str, note: str = "") -> None:
    wait_js(driver, "!document.getElementById('wrapup').hidden")
    choose(driver, "disposition", code)
    if note:
        driver.find_element(By.ID, "note").send_keys(note)
    driver.find_element(By.CSS_SELECTOR, "#wrapup button[type=submit]").click()
    wait_js(driver, "document.getElementById('wrapup-saved').textContent !== ''")


# --- tests ---------------------------------------------------------------------------------------
def test_ivr_caller_rings_the_page_with_its_pop_and_talks_both_ways(
    live: LiveStack, browser: WebDriver
) -> None:
    log_in(browser, live)
    loaded = js(
        browser,
        "(([n]) => ({load_ms: n.loadEventEnd - n.startTime, "
        "dom_ms: n.domContentLoadedEventEnd - n.startTime}))"
        "(performance.getEntriesByType('navigation'))",
    )
    _artifact("page-load.json", loaded)
    shot(browser, "idle")
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "not-ready", "reason": "break"})
    ready(browser)
    phone = RtpPhone(tone_hz=CALLER_HZ).start()
    caller = live.call_in(phone.port, "95598").start()
    try:
        assert wait_until(lambda: phone.peer is not None, 10), "the caller got no audio"
        time.sleep(1.5)
        phone.press("1")
        time.sleep(1.5)
        phone.press(f"{ACCOUNT}#0")
        # The page rings (its SIP phone got the INVITE) and shows who calls and why.
        wait_js(browser, "window.desk.incoming && window.desk.view.call_state === 'ringing'", 60)
        wait_js(
            browser, "document.querySelector('[data-field=heard]').textContent.includes('balance')"
        )
        assert ACCOUNT in browser.find_element(By.CSS_SELECTOR, "[data-field=entered]").text
        assert (
            "account_lookup" in browser.find_element(By.CSS_SELECTOR, "[data-field=ivr_path]").text
        )
        assert browser.find_element(By.CSS_SELECTOR, "[data-field=queue]").text == "billing"
        why = browser.find_element(By.CSS_SELECTOR, "[data-field=why]").text
        assert why.startswith("longest-idle: billing at level 5"), why
        shot(browser, "ringing")
        call_id = str(js(browser, "window.desk.view.call"))
        assert heard(phone, 1.0).peak_hz == pytest.approx(MOH_HZ, abs=15)  # still waiting

        click(browser, "answer")
        wait_js(browser, "window.desk.view.call_state === 'connected'")
        first = rtp(browser)
        assert heard(phone, 2.0).peak_hz == pytest.approx(MIC_HZ, abs=15)  # agent → caller
        second = rtp(browser)
        assert second["inbound"] > first["inbound"] + 50, (first, second)  # caller → agent
        assert second["outbound"] > first["outbound"] + 50, (first, second)
        shot(browser, "in-call")

        click(browser, "hold")
        wait_js(browser, "window.desk.view.held === true")
        on_hold = heard(phone)
        assert on_hold.peak_hz == pytest.approx(MOH_HZ, abs=15), on_hold  # music on hold
        click(browser, "hold")  # now "resume"
        wait_js(browser, "window.desk.view.held === false")
        assert heard(phone).peak_hz == pytest.approx(MIC_HZ, abs=15)

        hang_up_in_page(browser)
        shot(browser, "wrap-up")
        dispose(browser, "bill-enquiry", "asked about the due date")
        assert caller.wait(timeout=20).successful == 1
    finally:
        caller.stop()
        phone.stop()
    status, body = live.api("GET", f"/calls/{call_id}", token=f"agent:{DESK_AGENT}")
    assert status == 200, body
    assert (body["disposition"], body["note"]) == ("bill-enquiry", "asked about the due date")
    history = [e for e in body["events"] if e["kind"] == "disposition"]
    assert history and history[0]["fields"]["code"] == "bill-enquiry"
    assert js(browser, "[window.desk.gaps, window.desk.duplicates]") == [0, 0]
    ready(browser)


def test_blind_transfer_from_the_page_keeps_the_callers_arrival_time(
    live: LiveStack, browser: WebDriver
) -> None:
    log_in(browser, live)
    if state(browser) != "ready":
        ready(browser)
    phone = RtpPhone().start()
    agents = live.agents("answer", talk_ms=2000).start()
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "not-ready", "reason": "break"})
    caller = live.call_in(phone.port, "95599").start()
    try:
        wait_js(browser, "window.desk.incoming && window.desk.view.call_state === 'ringing'", 30)
        call_id = str(js(browser, "window.desk.view.call"))
        first = record(live, call_id)
        click(browser, "answer")
        wait_js(browser, "window.desk.view.call_state === 'connected'")
        live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "ready"})
        choose(browser, "xfer-kind", "queue")
        browser.find_element(By.ID, "xfer-target").send_keys("business")
        click(browser, "transfer")
        wait_js(browser, "window.desk.view.state === 'wrap-up'")
        assert caller.wait(timeout=30).successful == 1
    finally:
        caller.stop()
        agents.stop()
        phone.stop()
    final = record(live, call_id)
    assert final["agent"] == PHONE_AGENT and final["queue"] == "business"
    # The original arrival and queueing times: the caller is not sent to the back.
    assert (final["arrived_at"], final["queued_at"]) == (first["arrived_at"], first["queued_at"])
    events = live.events(call_id)
    transfer = next(e for e in events if e["kind"] == "transfer")
    assert (transfer["by"], transfer["target"]) == (f"agent:{DESK_AGENT}", "business")
    assert [e["queue"] for e in events if e["kind"] == "enter"] == ["general", "business"]
    dispose(browser, "other")
    ready(browser)


def test_callers_hear_music_while_waiting_after_the_queue_had_emptied(
    live: LiveStack, browser: WebDriver
) -> None:
    """Asterisk drops a holding bridge's music when its last caller leaves; the next caller
    to wait must hear it again (earlier tests emptied the bridge many times)."""
    log_in(browser, live)
    live.api("POST", f"/agents/{DESK_AGENT}/state", {"action": "not-ready", "reason": "break"})
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "not-ready", "reason": "break"})
    phone = RtpPhone().start()
    caller = live.call_in(phone.port, "95599").start()
    agents = live.agents("answer", talk_ms=1000).start()
    try:
        assert wait_until(lambda: phone.peer is not None, 10), "the caller got no audio"
        waiting = heard(phone, 3.0)
        assert waiting.peak_hz == pytest.approx(MOH_HZ, abs=15), waiting
        live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "ready"})
        assert caller.wait(timeout=30).successful == 1
    finally:
        caller.stop()
        agents.stop()
        phone.stop()
    ready(browser)


def test_the_page_reconnects_after_a_controller_restart_with_no_event_lost(
    live: LiveStack, browser: WebDriver
) -> None:
    log_in(browser, live)
    if state(browser) != "ready":
        ready(browser)
    before = int(js(browser, "window.desk.lastSeq"))
    pid = live.stack.controller.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_js(browser, "!window.desk.eventsUp", 10)
    live.stack.up()
    wait_js(browser, "window.desk.eventsUp", 30)
    # Changes made after the restart arrive, numbered on from before it.
    live.api("POST", f"/agents/{DESK_AGENT}/state", {"action": "not-ready", "reason": "meeting"})
    wait_js(browser, "window.desk.view.state === 'not-ready'")
    ready(browser)
    seqs = js(browser, "window.desk.seqLog")
    assert seqs[-1] > before and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert js(browser, "[window.desk.gaps, window.desk.duplicates]") == [0, 0]
    assert wait_js(browser, "window.desk.sipRegistered", 40)


def test_an_agent_can_not_read_or_act_on_another_agents_call(
    live: LiveStack, browser: WebDriver
) -> None:
    log_in(browser, live)
    phone = RtpPhone().start()
    agents = live.agents("answer", talk_ms=4000).start()
    live.api("POST", f"/agents/{DESK_AGENT}/state", {"action": "not-ready", "reason": "break"})
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "ready"})
    caller = live.call_in(phone.port, "95599").start()
    try:
        assert wait_until(lambda: live.agent(PHONE_AGENT)["call"] is not None, 20)
        call_id = live.agent(PHONE_AGENT)["call"]
        other = f"agent:{DESK_AGENT}"
        for method, path, body in (
            ("GET", f"/calls/{call_id}", None),
            ("GET", f"/calls/{call_id}/screen", None),
            ("POST", f"/calls/{call_id}/hold", None),
            ("POST", f"/calls/{call_id}/transfer", {"queue": "general"}),
            ("POST", f"/agents/{PHONE_AGENT}/state", {"action": "ready"}),
        ):
            status, answer = live.api(method, path, body, token=other)
            assert (status, answer["error"]) == (403, "forbidden"), (path, answer)
        status, answer = live.api("GET", f"/calls/{call_id}", token="supervisor")
        assert status == 200 and answer["agent"] == PHONE_AGENT
        assert caller.wait(timeout=30).successful == 1
    finally:
        caller.stop()
        agents.stop()
        phone.stop()


def test_an_agent_may_choose_its_desk_phone_and_use_the_page_as_its_screen(
    live: LiveStack, browser: WebDriver
) -> None:
    """Logged in with "desk phone", calls ring the SIP phone (here a SIPp UAS that answers)
    and the page follows the call; the browser registers no phone of its own."""
    driver = browser
    driver.execute_script("sessionStorage.clear();")
    driver.get(desk_url(live))
    wait_js(driver, "window.desk && window.desk.ready")
    driver.find_element(By.ID, "login-agent").send_keys(PHONE_AGENT)
    driver.find_element(By.ID, "login-pin").send_keys(live.secrets().agent_pins[PHONE_AGENT])
    choose(driver, "login-device", "phone")
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait_js(driver, "window.desk.eventsUp")
    assert js(driver, "window.desk.phone") is None  # no WebRTC phone in the page
    assert live.agent(PHONE_AGENT)["phone"] == PHONE_AGENT
    live.api("POST", f"/agents/{DESK_AGENT}/state", {"action": "not-ready", "reason": "break"})
    ready(driver)
    phone = RtpPhone().start()
    agents = live.agents("answer", talk_ms=1500).start()
    caller = live.call_in(phone.port, "95599").start()
    try:
        wait_js(driver, "window.desk.view.call_state === 'connected'", 30)
        assert caller.wait(timeout=30).successful == 1  # the desk phone hung up
        wait_js(driver, "window.desk.view.state === 'wrap-up'")
        dispose(driver, "other")
    finally:
        caller.stop()
        agents.stop()
        phone.stop()
    ready(driver)
    click(driver, "logout")
    wait_js(driver, "!document.getElementById('login').hidden")
    assert live.agent(PHONE_AGENT)["state"] == "logged-out"
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "login", "phone": PHONE_AGENT})
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "ready"})


def test_the_event_channel_checks_the_token_and_the_origin(live: LiveStack) -> None:
    url = tls.controller_url(live.config, "/api/v1/events")
    token = live.secrets().api_tokens[f"agent:{DESK_AGENT}"]

    async def talk() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url) as ws:
                await ws.send_json({"token": "not-a-token", "after": None})
                assert (await ws.receive_json(timeout=5))["error"] == "auth-invalid"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(url, origin="http://evil.example")
            assert refused.value.status == 403
            async with http.ws_connect(url) as ws:
                await ws.send_json({"token": token, "after": 0})
                snapshot = await ws.receive_json(timeout=5)
                assert snapshot["type"] == "snapshot" and snapshot["agent"] == DESK_AGENT
                count = min(3, snapshot["seq"])
                backlog = [await ws.receive_json(timeout=5) for _ in range(count)]
                assert [e["seq"] for e in backlog] == list(range(1, count + 1))

    asyncio.run(talk())


def test_time_from_queue_to_ringing_page(live: LiveStack, browser: WebDriver) -> None:
    """20 calls straight into a queue, answered by the page's auto-answer and hung up after
    a second; the figures (queue entry → the page's phone rings) are printed for the note."""
    log_in(browser, live)
    live.api("POST", f"/agents/{PHONE_AGENT}/state", {"action": "not-ready", "reason": "break"})
    click(browser, "auto-answer")
    delays = []
    try:
        for _ in range(20):
            if state(browser) == "wrap-up":
                dispose(browser, "other")
            if state(browser) != "ready":
                ready(browser)
            phone = RtpPhone().start()
            caller = live.call_in(phone.port, "95599").start()
            try:
                wait_js(browser, "window.desk.view.call_state === 'connected'", 30)
                rung = float(js(browser, "window.desk.rangAt"))
                call_id = str(js(browser, "window.desk.view.call"))
                time.sleep(1.0)
                hang_up_in_page(browser)
                assert caller.wait(timeout=30).successful == 1
            finally:
                caller.stop()
                phone.stop()
            delays.append(rung - float(record(live, call_id)["queued_at"]))
    finally:
        click(browser, "auto-answer")
    delays.sort()
    figures = {
        "calls": len(delays),
        "p50_ms": round(statistics.median(delays) * 1e3, 1),
        "p99_ms": round(delays[min(len(delays) - 1, round(0.99 * len(delays)))] * 1e3, 1),
        "max_ms": round(delays[-1] * 1e3, 1),
    }
    _artifact("ring-delay.json", figures)
    assert all(d > 0 for d in delays)


def test_an_agent_reads_its_quality_score_and_disputes_it_once(
    live: LiveStack, browser: WebDriver
) -> None:
    path = live.config.run_dir / live.config.controller.history_db
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT call_id FROM calls WHERE agent = ? LIMIT 1", (DESK_AGENT,))
        (call_id,) = row.fetchone()  # the first test's call, talked at the page
    finally:
        db.close()
    body = {"call": call_id, "ticked": ["attitude.warm"], "comment": "热情"}
    status, score = live.api("POST", "/qa/scores", body, token="supervisor")
    assert status == 201 and score["agent"] == DESK_AGENT, score
    log_in(browser, live)
    click(browser, "qa-mine")
    item = f"#qa-scores li[data-score='{score['id']}']"
    wait_js(browser, f'document.querySelector("{item}") !== null')
    line = browser.find_element(By.CSS_SELECTOR, item)
    assert "9 / 63" in line.text and "热情" in line.text
    line.find_element(By.TAG_NAME, "input").send_keys("我很热情")
    line.find_element(By.TAG_NAME, "button").click()
    wait_js(browser, f"document.querySelector(\"{item}\").textContent.includes('我很热情')")
    status, again = live.api(
        "POST",
        f"/qa/scores/{score['id']}/dispute",
        {"reason": "again"},
        token=f"agent:{DESK_AGENT}",
    )
    assert (status, again["error"]) == (409, "dispute-exists")
