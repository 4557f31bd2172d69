"""A small W3C WebDriver client over urllib, for driving headless Chromium through
chromedriver in tests (no selenium): start the driver, open a session, navigate, find
elements by CSS, click, type, read text, end the session.

``Browser.start()`` returns None when chromium or chromedriver is missing; the caller
decides whether that skips or fails (``EAS_REQUIRE_TOOLS``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C element reference key
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


class WebDriverError(Exception):
    """The driver answered with an error (``error`` is the W3C error code)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


def tools() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` paths, or None when either is missing."""
    driver = shutil.which("chromedriver")
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    return (browser, driver) if browser and driver else None


class Browser:
    """One chromedriver process with one headless session."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, session: str) -> None:
        self.process = process
        self.url = url
        self.session = session

    @classmethod
    def start(cls, timeout: float = 30) -> Browser | None:
        found = tools()
        if found is None:
            return None
        browser, driver = found
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        process = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if _call("GET", f"{url}/status", None, 5).get("ready"):
                        break
                except (OSError, WebDriverError):
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chromedriver did not start")
                time.sleep(0.1)
            options = {"binary": os.path.realpath(browser) if browser.endswith("google-chrome") else browser,
                       "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--ignore-certificate-errors", "--window-size=1280,1024",
                                "--disable-extensions", "--no-first-run"]}
            capabilities = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "acceptInsecureCerts": True,
                                                             "goog:chromeOptions": options}}}
            value = _call("POST", f"{url}/session", capabilities, timeout)
            return cls(process, url, value["sessionId"])
        except BaseException:
            process.kill()
            process.wait()
            raise

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return _call(method, f"{self.url}/session/{self.session}{path}", body if body is not None or
                     method == "GET" else {}, 30)

    def get(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    @property
    def current_url(self) -> str:
        return str(self._session("GET", "/url"))

    @property
    def source(self) -> str:
        return str(self._session("GET", "/source"))

    def find(self, css: str) -> str:
        """The element id of the first match (``WebDriverError`` "no such element")."""
        value = self._session("POST", "/element", {"using": "css selector", "value": css})
        return str(value[ELEMENT])

    def find_all(self, css: str) -> list[str]:
        return [str(v[ELEMENT]) for v in self._session("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, css: str, *, navigates: bool = True, timeout: float = 10) -> None:
        """Click the element; when the click ``navigates`` (a link, a form's button),
        return once the next page has replaced this one (a new document element), so
        that what follows never reads the old page."""
        before = self.find("html")
        self._session("POST", f"/element/{self.find(css)}/click")
        deadline = time.monotonic() + timeout
        while navigates:
            try:
                if self.find("html") != before and self._session("POST", "/execute/sync", {
                        "script": "return document.readyState", "args": []}) == "complete":
                    return
            except WebDriverError as e:
                if e.error not in ("no such element", "stale element reference"):
                    raise
            if time.monotonic() > deadline:
                raise WebDriverError("timeout", f"no new page after clicking {css}")
            time.sleep(0.05)

    def type(self, css: str, text: str, *, clear: bool = True) -> None:
        element = self.find(css)
        if clear:
            self._session("POST", f"/element/{element}/clear")
        self._session("POST", f"/element/{element}/value", {"text": text})

    def text(self, css: str = "body") -> str:
        return str(self._session("GET", f"/element/{self.find(css)}/text"))

    def texts(self, css: str) -> list[str]:
        return [str(self._session("GET", f"/element/{e}/text")) for e in self.find_all(css)]

    def alert_text(self) -> str | None:
        """The text of an open alert (a script ran), or None."""
        try:
            return str(self._session("GET", "/alert/text"))
        except WebDriverError as e:
            if e.error == "no such alert":
                return None
            raise

    def quit(self) -> None:
        try:
            self._session("DELETE", "")
        except (OSError, WebDriverError):
            pass
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _call(method: str, url: str, body: dict[str, Any] | None, timeout: float) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        answer = json.loads(e.read() or b"{}")
        value = answer.get("value") or {}
        raise WebDriverError(value.get("error", str(e.code)), value.get("message", "")) from None
    return answer.get("value")
