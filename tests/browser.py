"""Headless Chromium for tests: open a page, collect its console errors and the requests it
made, query the DOM, write a PNG screenshot.

It speaks the Chrome DevTools Protocol over ``--remote-debugging-pipe``: Chromium reads
commands from fd 3 and writes replies and events to fd 4, one JSON message each, ended by a NUL
byte. That needs only the Debian ``chromium`` package and the standard library: no WebDriver
binary to keep in step with the browser, no TCP port to collide on, no websocket client, and
nothing downloaded at run time. ``make setup`` installs the package (as root, on Debian).

The browser is found at ``$DYNEMBED_CHROMIUM``, else ``/usr/bin/chromium``, else ``chromium``
or ``chromium-browser`` on the PATH. When there is none, ``BrowserError`` says how to install
it: a test that cannot run fails rather than skips.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_ENV = "DYNEMBED_CHROMIUM"
INSTALL_HINT = (
    "headless Chromium is needed for the browser tests: run `make setup` (as root on Debian it runs "
    "`apt-get install -y --no-install-recommends chromium`), or set DYNEMBED_CHROMIUM to a Chromium binary"
)
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI; the sandbox refuses root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, timed out, or the page did not load."""


def find_chromium() -> str:
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            raise BrowserError(f"{CHROMIUM_ENV}={configured} is not an executable file")
        return configured
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrowserError(INSTALL_HINT)


@dataclass
class Page:
    """One loaded page: what went wrong while loading it, and ways to look at it."""

    browser: Browser
    session: str
    url: str
    errors: list[str] = field(default_factory=list)
    """console.error/assert calls, uncaught exceptions, and browser log entries of level error
    (failed loads, Content-Security-Policy violations)."""
    warnings: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """Every URL the page asked for, the document itself included."""
    request_urls: dict[str, str] = field(default_factory=dict, repr=False)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        reply = self.browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r} threw: {_exception_text(reply['exceptionDetails'])}")
        return reply["result"].get("value")

    def count(self, selector: str) -> int:
        return int(self.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def screenshot(self, path: Path | str, *, full_page: bool = True) -> Path:
        """A PNG of the whole page (or of the viewport), written to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.browser.send("Page.getLayoutMetrics", session=self.session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params |= {
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }
        reply = self.browser.send("Page.captureScreenshot", params, session=self.session)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(reply["data"]))
        return target


class Browser:
    """``with Browser() as browser: page = browser.open(path)``; one Chromium process."""

    def __init__(
        self, executable: str | None = None, *, width: int = 1280, height: int = 900, timeout_s: float = 30.0
    ) -> None:
        self.executable = executable or find_chromium()
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._pid: int | None = None
        self._to_browser = self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self._pages: dict[str, Page] = {}
        self._profile = Path(tempfile.mkdtemp(prefix="dynembed-chromium-"))
        self.log_path = self._profile / "chromium.log"

    # ---- process

    def __enter__(self) -> Browser:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()
        # Chromium wants the pipe on fds 3 and 4 exactly; copies on fds >= 10 (close-on-exec)
        # are dup2'ed there by posix_spawn, so no other descriptor can be in the way.
        child_in = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (commands_r, replies_w):
            os.close(fd)
        argv = [
            self.executable,
            *FLAGS,
            f"--user-data-dir={self._profile / 'profile'}",
            f"--window-size={self.width},{self.height}",
            "about:blank",
        ]
        try:
            self._pid = os.posix_spawn(
                self.executable,
                argv,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        1,
                        str(self.log_path),
                        os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                        0o644,
                    ),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                    (os.POSIX_SPAWN_DUP2, child_in, 3),
                    (os.POSIX_SPAWN_DUP2, child_out, 4),
                ],
            )
        except OSError as exc:
            raise BrowserError(f"cannot start {self.executable}: {exc}") from exc
        finally:
            os.close(child_in)
            os.close(child_out)
        self._to_browser, self._from_browser = commands_w, replies_r
        self.send("Browser.getVersion")  # the browser answers: it is up

    def close(self) -> None:
        if self._pid is not None:
            with contextlib.suppress(BrowserError, OSError):
                self.send("Browser.close", timeout_s=5)
            if not self._reaped(timeout_s=5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._pid, signal.SIGKILL)
                self._reaped(timeout_s=5)
            self._pid = None
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_browser = self._from_browser = -1
        shutil.rmtree(self._profile, ignore_errors=True)

    def _reaped(self, timeout_s: float) -> bool:
        assert self._pid is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid:
                return True
            time.sleep(0.05)
        return False

    # ---- protocol

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and wait for its reply; events that arrive meanwhile are kept."""
        if self._to_browser < 0:
            raise BrowserError(f"{method}: the browser is not running (use the page inside `with Browser()`)")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            reply = self._read(deadline, f"the reply to {method}")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._dispatch(reply)

    def wait_for(self, event: str, *, session: str, timeout_s: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event and message.get("sessionId") == session:
                    del self._events[index]
                    params: dict[str, Any] = message.get("params", {})
                    return params
            self._dispatch(self._read(deadline, event))

    def _read(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(
                    f"no {waiting_for} from Chromium in {self.timeout_s:.0f} s; {self._log_tail()}"
                )
            ready, _, _ = select.select([self._from_browser], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited while waiting for {waiting_for}; {self._log_tail()}")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _dispatch(self, message: dict[str, Any]) -> None:
        """Record what a page reports; keep other events for ``wait_for``."""
        if "method" not in message:
            return
        page = self._pages.get(message.get("sessionId", ""))
        method, params = message["method"], message.get("params", {})
        if page is not None:
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                page.errors.append(
                    "console.error: " + " ".join(_remote_text(a) for a in params.get("args", []))
                )
                return
            if method == "Runtime.consoleAPICalled" and params.get("type") == "warning":
                page.warnings.append(" ".join(_remote_text(a) for a in params.get("args", [])))
                return
            if method == "Runtime.exceptionThrown":
                page.errors.append("uncaught: " + _exception_text(params.get("exceptionDetails", {})))
                return
            if method == "Log.entryAdded":
                entry = params.get("entry", {})
                text = f"{entry.get('source', 'log')}: {entry.get('text', '')} {entry.get('url', '')}".strip()
                if entry.get("level") == "error":
                    page.errors.append(text)
                elif entry.get("level") == "warning":
                    page.warnings.append(text)
                return
            if method == "Network.requestWillBeSent":
                url = str(params.get("request", {}).get("url", ""))
                page.requests.append(url)
                page.request_urls[str(params.get("requestId"))] = url
                return
            if method == "Network.loadingFailed" and not params.get("canceled"):
                url = page.request_urls.get(str(params.get("requestId")), "?")
                why = params.get("blockedReason") or params.get("errorText") or "failed"
                page.errors.append(f"load failed: {url} ({why})")
                return
        self._events.append(message)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return "no Chromium log"
        return "Chromium log:\n" + "\n".join(lines)

    # ---- pages

    def open(self, location: Path | str) -> Page:
        """Load a file (path) or URL in a new tab; return once its load event has fired."""
        url = location.resolve().as_uri() if isinstance(location, Path) else location
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session, url)
        self._pages[session] = page
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        navigation = self.send("Page.navigate", {"url": url}, session=session)
        if navigation.get("errorText"):
            raise BrowserError(f"cannot load {url}: {navigation['errorText']}")
        self.wait_for("Page.loadEventFired", session=session)
        self.send("Runtime.evaluate", {"expression": "0"}, session=session)  # events sent before it are in
        return page


def _remote_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        return str(obj["value"])
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type", ""))


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception") or {}
    where = f" at {details.get('url', '')}:{details.get('lineNumber', '?')}" if details.get("url") else ""
    return f"{exception.get('description') or details.get('text', '')}{where}"
