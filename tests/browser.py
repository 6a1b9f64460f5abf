"""A small headless-Chromium driver for the report tests: the DevTools protocol over
``--remote-debugging-pipe`` (NUL-delimited JSON on file descriptors 3 and 4: no websocket, no
extra package). Opens one page, collects its console errors, uncaught exceptions and error log
entries (CSP violations, failed loads), evaluates expressions in it and takes a full-page
screenshot.

Chromium is Debian's ``chromium`` package (scripts/setup installs it); ``chromium_path()`` is None
when it is not installed (the tests skip then, and only then).
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe"]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _to_3_and_4(read_fd: int, write_fd: int) -> None:
    """In the child: the command pipe on fd 3, the response pipe on fd 4 (via fds >= 10, so
    that neither overwrites the other)."""
    import fcntl
    r = fcntl.fcntl(read_fd, fcntl.F_DUPFD, 10)
    w = fcntl.fcntl(write_fd, fcntl.F_DUPFD, 10)
    os.dup2(r, 3)
    os.dup2(w, 4)


class Page:
    """One page in a fresh headless Chromium (its own empty profile directory)."""

    def __init__(self, binary: str | None = None, width: int = 1200, height: int = 900,
                 timeout: float = 60.0):
        binary = binary or chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="report-chromium-")
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        # the child reads commands on fd 3 and writes responses on fd 4
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: _to_3_and_4(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=True)

    # -- protocol ---------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        for e in self.events:
            if e["method"] == method:
                return e
        while True:
            m = self._read_message(deadline)
            if "method" in m:
                self.events.append(m)
                if m["method"] == method:
                    return m

    # -- page -------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")
        self.evaluate("1")  # drain the events the load produced

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", session=True, expression=expression,
                      returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (CSP, failed loads)."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                  for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log ({p['entry'].get('source')}): {p['entry'].get('text')}")
        return out

    def screenshot(self, path: Path, max_height: float | None = None) -> Path:
        """The full page (or its top ``max_height`` pixels) as a PNG."""
        metrics = self.call("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = min(size["height"], max_height) if max_height else size["height"]
        r = self.call("Page.captureScreenshot", session=True, format="png",
                      captureBeyondViewport=True,
                      clip={"x": 0, "y": 0, "width": size["width"], "height": height,
                            "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# what every report page must show (ids and classes written by handover.report.html)
DOM_FACTS = """JSON.stringify({
  lanes: [...document.querySelectorAll('#timeline g.lane')].map(g => g.dataset.lane),
  rows: [...document.querySelectorAll('#components tr.component-row')]
          .map(r => r.dataset.component),
  bars: document.querySelectorAll('#timeline rect.step-bar').length,
  failedBars: document.querySelectorAll('#timeline rect.step-bar[data-outcome=failed]').length,
  outages: document.querySelectorAll('#timeline rect.outage').length,
  probe: document.querySelectorAll('#timeline rect.probe-up, #timeline rect.probe-down').length,
  rollback: document.querySelectorAll('#timeline .rollback-action').length,
  totals: (document.querySelector('#totals') || {}).innerText || '',
  width: document.querySelector('#timeline').getBoundingClientRect().width,
  text: document.body.innerText
})"""


def report_facts(html: Path, screenshot: Path) -> tuple[dict[str, Any], list[str]]:
    """Open a report page in headless Chromium: (what its DOM shows, its errors); the full page
    is saved as a PNG at ``screenshot``."""
    with Page() as page:
        page.open(html.resolve().as_uri())
        facts = json.loads(page.evaluate(DOM_FACTS))
        page.screenshot(screenshot)
        # the top of the page (totals, timeline, components table), for the README
        top = page.evaluate("document.querySelector('#components').getBoundingClientRect()"
                            ".bottom + window.scrollY + 16")
        page.screenshot(screenshot.with_name(screenshot.stem + "-top.png"), max_height=top)
        return facts, page.errors()


def check_run_page(reports: Path, components: list[str], screenshot: str,
                   rollback_on: str | None = None, parts: int | None = 1) -> dict[str, Any]:
    """The HTML page the newest run in ``reports`` left, opened in Chromium (when installed):
    no errors, one lane and one table row per component of ``components`` (in that order), step
    bars, the probe strip, and, with ``rollback_on``, a failed bar and rollback marks on that
    component's lane only; ``parts`` sessions on the timeline. The screenshot goes to
    <repo>/reports/<screenshot>.png. Returns the DOM facts (None values when Chromium is
    missing: then only the page's presence and its markup are checked)."""
    newest = max(reports.glob("*.json"), key=lambda p: p.stat().st_mtime)
    html = newest.with_suffix(".html")
    assert html.exists(), f"no HTML report beside {newest}"
    text = html.read_text()
    assert "<script" not in text
    if chromium_path() is None:
        for c in components:
            assert f'data-lane="{c}"' in text, c
        return {}
    root = Path(__file__).resolve().parents[1]
    facts, errors = report_facts(html, root / "reports" / f"{screenshot}.png")
    assert errors == [], errors
    lanes = [lane for lane in facts["lanes"] if not lane.startswith("phase ")]
    assert lanes == components, facts["lanes"]
    assert facts["rows"] == components
    assert facts["bars"] >= len(components) and facts["probe"] > 0
    if parts is not None:
        assert text.count('class="part-start"') == parts, text.count('class="part-start"')
    if rollback_on is not None:
        assert facts["failedBars"] >= 1 and facts["rollback"] >= 1
        lane = text.split(f'data-lane="{rollback_on}"')[1].split("</g>")[0]
        assert "rollback-action" in lane and 'data-outcome="failed"' in lane
    return facts
