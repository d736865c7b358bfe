"""Take the README's screenshot of the emulator's inbox (docs/img/inbox.png).

``python -m bench.inbox_screenshot [PATH]``: starts an emulator, plays a small
conversation (RELAY sends, a reply from the phone, a failing number, a REST
message with status callbacks to a local receiver, a picture message), opens the
inbox in headless Chromium (the system's chromium and chromedriver) and saves a
PNG of it.
"""

from __future__ import annotations

import http.server
import sys
import threading
from pathlib import Path
from typing import Any

from swsync import RelayClient, RestClient
from swsync.emulator import FAILED_NUMBER, Emulator

ROOT = Path(__file__).resolve().parent.parent
APP = "+15559870000"
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 96 96"><rect width="96" height="96" fill="#cfe3ff"/>'
    b'<circle cx="70" cy="26" r="12" fill="#ffb703"/><path d="M0 80 L32 44 L56 70 L72 56 L96 80 V96 H0Z" '
    b'fill="#2a9d8f"/></svg>'
)


class Receiver(http.server.BaseHTTPRequestHandler):
    """Answers webhooks with 200 and serves one picture."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.send_header("Content-Length", str(len(SVG)))
        self.end_headers()
        self.wfile.write(SVG)

    def log_message(self, *args: Any) -> None:
        pass


def play(emu: Emulator, base: str) -> str:
    """Fill the emulator with a believable afternoon; return the message to show."""
    relay = RelayClient(project=emu.project, token=emu.token, host=emu.relay_url, contexts=["default"])
    relay.connect()
    try:
        sent = [
            relay.send_message("+15551230002", APP, "Your code is 482913. It expires in 10 minutes."),
            relay.send_message(FAILED_NUMBER, APP, "Reminder: dentist appointment tomorrow at 9:30"),
            relay.send_message("+15551230003", APP, "Ваш заказ доставлен. Спасибо!", tags=["orders"]),
        ]
        emu.inject_inbound(APP, "+15551230001", "Hi! Is my order #1042 on its way?")
        with RestClient(project=emu.project, token=emu.token, space=emu.rest_url) as rest:
            sid = rest.messages.create(
                to="+15551230001",
                from_=APP,
                status_callback=f"{base}/status",
                body="Yes! Order #1042 has shipped and arrives Thursday. Here is the parcel:",
                media_url=[f"{base}/parcel.svg"],
            ).sid
        emu.inject_inbound(APP, "+15551230001", "Great, thanks!")
        for message in sent:
            message.wait(timeout=10)
        emu.wait_idle(timeout=10)
        return sid
    finally:
        relay.disconnect()


def shoot(path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.browser import chromium

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, name="bench-receiver", daemon=True)
    thread.start()
    driver, _ = chromium("1400,1000", "--hide-scrollbars", prefix="swsync-shot-")
    try:
        with Emulator(state_delay=0.02) as emu:
            sid = play(emu, f"http://127.0.0.1:{server.server_address[1]}")
            driver.get(emu.ui_url)
            wait = WebDriverWait(driver, 10)
            wait.until(lambda d: d.find_element(By.ID, "live").text.startswith("Live"))
            wait.until(
                lambda d: d.find_element(By.CSS_SELECTOR, '#conversations .vrow[data-key^="+15551230001"]')
            ).click()
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f'#messages .vrow[data-key="{sid}"]')).click()
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#detail tbody tr")) == 4)
            wait.until(
                lambda d: d.execute_script(
                    "const i = document.querySelector('.thumbs img'); return i && i.complete && i.naturalWidth > 0"
                )
            )
            driver.find_element(By.ID, "compose-body").send_keys("Anything else I can help with?")
            driver.save_screenshot(str(path))
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


if __name__ == "__main__":
    shoot(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "inbox.png")
