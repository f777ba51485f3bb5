"""Debian's headless Chromium driven over the DevTools protocol (websocket-client), for the browser tests.

`chromium_or_skip()` finds the browser, or installs it once with tests/install_chromium.sh (root
and apt, as `make test`'s set-up does), and skips the test with the reason only when that is
impossible. `Browser` starts Chromium with the flags a closed network needs, on a DevTools port it
picks itself (--remote-debugging-port=0), in a temporary profile, and always ends it. `Browser.open`
loads a page in a new tab and returns a `Page` that has recorded every uncaught JavaScript
exception, console error, log error and network request of that page, and runs JavaScript probes.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import websocket

#: Headless, no GPU, and nothing that reaches out to Google's servers (the network here refuses them).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--window-size=1280,900",
         # WebGL (plotly's 3-D scatter) drawn on the CPU: without a GPU Chromium offers no WebGL otherwise
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
INSTALL_SCRIPT = Path(__file__).with_name("install_chromium.sh")
_install_attempt: dict = {}


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_or_skip() -> str:
    """The Chromium executable; installed once per session when missing; a skip that says why when impossible."""
    path = find_chromium()
    if path:
        return path
    if not _install_attempt:
        try:
            done = subprocess.run(["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
            _install_attempt["output"] = (done.stdout + done.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as err:
            _install_attempt["output"] = f"{type(err).__name__}: {err}"
    path = find_chromium()
    if path:
        return path
    tail = " | ".join(_install_attempt["output"].splitlines()[-3:])
    pytest.skip(f"headless Chromium is not installed and {INSTALL_SCRIPT.name} could not install it ({tail}); "
                "install Debian's 'chromium' package (as root: apt-get install chromium) to run the browser tests")


class DevToolsError(RuntimeError):
    """A DevTools command that failed, or a page that did not get where a test waited for it to."""


class Browser:
    """One headless Chromium process and its DevTools connection; use as a context manager."""

    def __init__(self, executable: str, profile_dir: Path, timeout: float = 60.0):
        self.executable, self.profile_dir, self.timeout = executable, Path(profile_dir), timeout
        self.events: list[dict] = []
        self._id = 0
        self.proc = self.ws = None

    def __enter__(self) -> "Browser":
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.profile_dir.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile_dir}", "--remote-debugging-port=0",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            start_new_session=True)
        try:
            port_file = self.profile_dir / "DevToolsActivePort"
            deadline = time.monotonic() + self.timeout
            while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise DevToolsError(f"Chromium did not open its DevTools port (exit status {self.proc.poll()}); "
                                        f"its log: {self.log_tail()}")
                time.sleep(0.1)
            port, path = port_file.read_text().split()[:2]
            self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout,
                                                  suppress_origin=True)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.profile_dir.parent / "chromium.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def close(self) -> None:
        """Close the connection and end Chromium and every process it started (its own process group)."""
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)   # the group is Chromium's own (start_new_session)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
        if getattr(self, "_stderr", None):
            self._stderr.close()

    def _receive(self, deadline: float) -> dict | None:
        self.ws.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            reply = self._receive(deadline)
            if reply is None:
                continue
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise DevToolsError(f"{method}: no answer within {timeout or self.timeout:.0f} s")

    def pump(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            event = self._receive(deadline)
            if event is not None:
                self.events.append(event)

    def open(self, url: str, timeout: float | None = None) -> "Page":
        """Load `url` in a new tab with Runtime, Log, Network and Page events recorded from the start;
        return once the document has loaded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        page = Page(self, session, target, url)
        self.send("Page.navigate", {"url": url}, session=session)
        page.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'", timeout)
        return page


class Page:
    """A tab of `Browser`: its events, JavaScript probes, a screenshot."""

    def __init__(self, browser: Browser, session: str, target: str, url: str):
        self.browser, self.session, self.target, self.url = browser, session, target, url

    def _events(self, method: str) -> list[dict]:
        return [e["params"] for e in self.browser.events if e.get("sessionId") == self.session
                and e.get("method") == method]

    def evaluate(self, expression: str, timeout: float | None = None):
        """The value of a JavaScript expression in the page (promises awaited)."""
        reply = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                       "awaitPromise": True}, self.session, timeout)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise DevToolsError(f"{expression[:80]!r} threw: "
                                f"{details.get('exception', {}).get('description') or details.get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, interval: float = 0.25):
        """Evaluate `expression` until it is truthy; return its value (DevToolsError after `timeout`)."""
        timeout = timeout or self.browser.timeout
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise DevToolsError(f"{self.url}: {expression!r} still false after {timeout:.0f} s; "
                                    f"errors so far: {self.errors()}")
            self.browser.pump(interval)

    @property
    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions (and unhandled promise rejections)."""
        out = []
        for p in self._events("Runtime.exceptionThrown"):
            d = p["exceptionDetails"]
            out.append(f"{d.get('exception', {}).get('description') or d.get('text')} ({d.get('url', '')})")
        return out

    @property
    def console_errors(self) -> list[str]:
        """console.error/console.assert calls and the browser's own error log entries (e.g. a file that failed to load)."""
        out = []
        for p in self._events("Runtime.consoleAPICalled"):
            if p["type"] in ("error", "assert"):
                out.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        for p in self._events("Log.entryAdded"):
            if p["entry"]["level"] == "error":
                out.append(f"log: {p['entry']['text']} ({p['entry'].get('url', '')})")
        return out

    @property
    def requests(self) -> list[str]:
        """Every URL the page asked for (documents, scripts, styles, images, fonts, XHR)."""
        return [p["request"]["url"] for p in self._events("Network.requestWillBeSent")]

    @property
    def failed_requests(self) -> list[str]:
        urls = {p["requestId"]: p["request"]["url"] for p in self._events("Network.requestWillBeSent")}
        return [f"{urls.get(p['requestId'], '?')}: {p['errorText']}" for p in self._events("Network.loadingFailed")
                if not p.get("canceled")]

    def errors(self) -> list[str]:
        """Everything that went wrong on the page: exceptions, console and log errors, failed loads."""
        return self.exceptions + self.console_errors + self.failed_requests

    def screenshot(self, path: Path) -> Path:
        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, self.session)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})
