"""The emulator's inbox page in a real browser: Debian's Chromium driven by selenium.

Selenium uses the system chromedriver (never Selenium Manager's download); each
wait is an explicit ``WebDriverWait`` with a timeout.
"""

from __future__ import annotations

import queue
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from swsync.emulator import FAILED_NUMBER, Emulator

from ...helpers import Hook, make_client
from ...support.browser import chromium

WAIT = 10.0  # seconds any one thing may take on a loaded machine
APP = "+15559870000"
PHONE = "+15551230000"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module, with a fresh profile."""
    driver, profile = chromium("1400,860")
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: WebDriver, condition: Any, timeout: float = WAIT) -> Any:
    # A live update may redraw a row between finding and using it: try again.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def open_inbox(driver: WebDriver, emu: Emulator) -> None:
    """Load the page, wait until its event stream is live, and mark the document."""
    driver.get(emu.ui_url)
    wait(driver, lambda d: d.find_element(By.ID, "live").text.startswith("Live"))
    driver.execute_script("window.__notReloaded = true")


def not_reloaded(driver: WebDriver) -> bool:
    return driver.execute_script("return window.__notReloaded === true") is True


def rows(driver: WebDriver, list_id: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, f"#{list_id} .vrow")


def row_texts(driver: WebDriver, list_id: str) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(r => r.textContent)",
        f"#{list_id} .vrow",
    )


def click_row(driver: WebDriver, list_id: str, key: str) -> None:
    def click(d: WebDriver) -> bool:
        d.find_element(By.CSS_SELECTOR, f'#{list_id} .vrow[data-key="{key}"]').click()
        return True

    wait(driver, click)


def timeline_states(driver: WebDriver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('ol.timeline li')].map(li => li.dataset.state)")


def test_a_relay_message_appears_live_and_its_timeline_reaches_delivered(browser: WebDriver) -> None:
    with Emulator(state_delay=0.05) as emu:
        open_inbox(browser, emu)
        assert row_texts(browser, "messages") == []
        client = make_client(emu, contexts=["default"]).connect()
        try:
            message = client.send_message(PHONE, APP, "Your table for two is ready")
            wait(browser, lambda d: any("Your table for two is ready" in t for t in row_texts(d, "messages")))
            click_row(browser, "messages", message.message_id)
            wait(browser, lambda d: timeline_states(d)[-1:] == ["delivered"])
            assert timeline_states(browser) == ["queued", "initiated", "sent", "delivered"]
            conversations = row_texts(browser, "conversations")
            assert len(conversations) == 2 and PHONE in conversations[1] and APP in conversations[1]
            assert not_reloaded(browser)
        finally:
            client.disconnect()


def test_a_reply_typed_in_the_compose_box_reaches_on_message_and_the_webhook(browser: WebDriver) -> None:
    hook = Hook("/hook")
    try:
        with Emulator(state_delay=0.0, inbound_webhook_url=hook.url) as emu:
            client = make_client(emu, contexts=["default"]).connect()
            got: queue.Queue[Any] = queue.Queue()
            client.on_message(got.put)
            try:
                client.send_message(PHONE, APP, "Reply YES to confirm").wait(timeout=WAIT)
                open_inbox(browser, emu)
                click_row(browser, "conversations", f"{PHONE}|{APP}")
                wait(browser, lambda d: d.find_element(By.ID, "compose-from").get_attribute("value") == PHONE)
                assert browser.find_element(By.ID, "compose-to").get_attribute("value") == APP
                box = browser.find_element(By.ID, "compose-body")
                box.send_keys("YES please")
                box.send_keys(Keys.CONTROL, Keys.ENTER)
                inbound = got.get(timeout=WAIT)
                assert (inbound.from_number, inbound.to_number, inbound.body) == (PHONE, APP, "YES please")
                form = hook.next_form()
                assert (form["From"], form["To"], form["Body"]) == (PHONE, APP, "YES please")
                wait(browser, lambda d: "Sent as" in d.find_element(By.ID, "compose-status").text)
                wait(browser, lambda d: any("YES please" in t for t in row_texts(d, "messages")))
                assert box.get_attribute("value") == ""
            finally:
                client.disconnect()
    finally:
        hook.close()


def test_search_narrows_the_lists(browser: WebDriver) -> None:
    with Emulator(state_delay=0.0) as emu:
        emu.add_messages(4, to="+15551110000", from_=APP, body="pizza order {i}")
        emu.add_messages(3, to="+15552220000", from_=APP, body="taxi is outside")
        open_inbox(browser, emu)
        wait(browser, lambda d: len(rows(d, "messages")) == 7)
        assert len(rows(browser, "conversations")) == 3  # "All messages" and two pairs
        search = browser.find_element(By.ID, "search")
        search.send_keys("2220")
        wait(browser, lambda d: len(rows(d, "messages")) == 3)
        assert len(rows(browser, "conversations")) == 2
        assert all("taxi" in t for t in row_texts(browser, "messages"))
        search.clear()
        search.send_keys("PIZZA ORDER 3")
        wait(browser, lambda d: len(rows(d, "messages")) == 1)
        assert "pizza order 3" in row_texts(browser, "messages")[0]


def test_a_failing_number_shows_its_reason(browser: WebDriver) -> None:
    with Emulator(state_delay=0.0) as emu:
        client = make_client(emu, contexts=["default"]).connect()
        try:
            message = client.send_message(FAILED_NUMBER, APP, "this one fails")
            assert message.wait(timeout=WAIT).message_state == "failed"
            open_inbox(browser, emu)
            wait(browser, lambda d: any("failed: unreachable" in t for t in row_texts(d, "messages")))
            click_row(browser, "messages", message.message_id)
            reason = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "ol.timeline .reason").text)
            assert reason == "reason: unreachable (error 30003)"
            assert timeline_states(browser) == ["queued", "failed"]
        finally:
            client.disconnect()


def test_keyboard_moves_through_the_list_and_opens_a_message(browser: WebDriver) -> None:
    with Emulator(state_delay=0.0) as emu:
        sids = emu.add_messages(30, body="note {i}")
        open_inbox(browser, emu)
        wait(browser, lambda d: rows(d, "messages"))
        listbox = browser.find_element(By.ID, "messages")
        listbox.send_keys(Keys.ARROW_DOWN)
        wait(browser, lambda d: "note 1" in d.find_element(By.ID, "detail").text)
        listbox.send_keys(Keys.END)
        wait(browser, lambda d: "note 29" in d.find_element(By.ID, "detail").text)
        active = listbox.get_attribute("aria-activedescendant")
        assert active == "messages-row-29"
        selected = browser.find_element(By.ID, active)
        assert selected.get_attribute("aria-selected") == "true" and selected.get_attribute("data-key") == sids[29]
        # Only the rows on screen exist: the list is virtualized.
        assert len(rows(browser, "messages")) < 30


def test_fault_controls_set_the_emulator(browser: WebDriver) -> None:
    with Emulator(state_delay=0.0) as emu:
        open_inbox(browser, emu)
        browser.find_element(By.CSS_SELECTOR, "#controls summary").click()
        silent = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, '[data-fault="silent"]'))
        silent.click()
        wait(browser, lambda d: "silent set to true" in d.find_element(By.ID, "controls-status").text)
        assert emu.faults.silent is True
        mps = browser.find_element(By.CSS_SELECTOR, '[data-fault="mps"]')
        assert mps.is_displayed()
        mps.send_keys("4", Keys.TAB)  # the change event fires when it loses focus
        wait(browser, lambda d: "mps set to 4" in d.find_element(By.ID, "controls-status").text)
        assert emu.pacing.mps == 4.0
        browser.find_element(By.CSS_SELECTOR, "#controls summary").click()


def test_ten_thousand_messages_render_only_what_is_visible(browser: WebDriver) -> None:
    with Emulator(state_delay=0.0) as emu:
        sids = emu.add_messages(10_000, body="seeded message {i}")
        open_inbox(browser, emu)
        wait(browser, lambda d: "10000 messages" in d.find_element(By.ID, "live").text)
        assert 0 < len(rows(browser, "messages")) < 40  # a virtualized list, not 10,000 rows
        listbox = browser.find_element(By.ID, "messages")
        listbox.send_keys(Keys.END)
        wait(browser, lambda d: "seeded message 9999" in d.find_element(By.ID, "detail").text)
        assert browser.find_element(By.ID, "messages-row-9999").get_attribute("data-key") == sids[9999]
        assert len(rows(browser, "messages")) < 40
        browser.find_element(By.ID, "search").send_keys("message 4242")
        wait(browser, lambda d: len(rows(d, "messages")) == 1)
        assert "seeded message 4242" in row_texts(browser, "messages")[0]
