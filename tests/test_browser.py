"""The annotation app used as a person uses it: headless Chromium, keyboard, reloads, a killed server.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright``
Python package, which drives it (no browser download). Without chromium the
test is skipped, unless ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that
a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments import paths

CHROMIUM = Path("/usr/bin/chromium")
ARTICLE = """\
Debate in Parliament Over Sanctions on Iran

Members of parliament argued on Tuesday over whether sanctions on Iran should be eased.

Several speakers said that foreign military action would only strengthen the hardliners.

Others insisted that the world has a duty to protect women arrested for refusing the hijab.

A quoted post read <img src=x onerror="window.__xss=1"> and <b>bold</b> as plain characters.

The debate ends without a vote.
"""

if not CHROMIUM.exists():
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m experiments annotate`` in a child process, as a user starts it."""

    def __init__(self, data: Path, source: Path, log: Path):
        self.data, self.source, self.log = data, source, log
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> str:
        self.port = free_port()
        command = [sys.executable, "-m", "experiments", "annotate", "--annotator", "tester", "--data", str(self.data),
                   "--source", str(self.source), "--port", str(self.port)]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, cwd=paths.ROOT, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                urllib.request.urlopen(url + "api/state", timeout=1).read()
                return url
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the app did not answer within 60 s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when the machine or the terminal dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def workspace(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(paths.PARAGRAPHS, data / "paragraphs.jsonl")
    source = tmp_path / "parliament.txt"
    source.write_text(ARTICLE, encoding="utf-8")
    server = Server(data, source, tmp_path / "server.log")
    yield server
    server.kill()


def records(server: Server) -> list[dict]:
    path = server.data / "annotations" / "tester.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def launch(playwright):
    """Debian's chromium, headless, with no background connections (this machine's network is closed)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def test_label_undo_reload_and_a_killed_server_lose_nothing(workspace):
    url = workspace.start()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def open_page(address: str) -> None:
            page.goto(address)
            page.wait_for_selector("body[data-ready=true]")

        def shown() -> str:
            return page.text_content("#text")

        def decide(*keys: str) -> None:
            before = page.get_attribute("#text", "data-id")
            for key in keys:
                page.keyboard.press(key)
            page.wait_for_selector(f"#text:not([data-id={json.dumps(before)}])")

        def pressed(group: str) -> list[str]:
            return page.eval_on_selector_all(f"#{group} .option[aria-pressed=true]", "els => els.map(e => e.dataset.name)")

        open_page(url)
        assert page.text_content("#doc-title") == "Debate in Parliament Over Sanctions on Iran"
        assert shown() == "Debate in Parliament Over Sanctions on Iran"
        assert page.is_hidden("#before")
        assert page.text_content("#after").startswith("Members of parliament")

        # Three paragraphs with the keyboard, then undo the third.
        decide("2", "h", "Enter")
        decide("1", "Enter")
        assert shown().startswith("Several speakers")
        decide("4", "s", "o", "Enter")
        assert page.text_content("#count-done") == "3"
        decide("Backspace")
        assert shown().startswith("Several speakers")
        assert pressed("stance") == ["none"] and pressed("frames") == ["security", "sovereignty"]
        assert page.text_content("#count-done") == "2"

        # A reload serves the undone paragraph again, with nothing lost.
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert shown().startswith("Several speakers")
        assert page.text_content("#count-done") == "2" and page.text_content("#count-left") == "4"
        assert [(r["paragraph_id"], r["action"], r.get("stance"), r["frames"]) for r in records(workspace)] == [
            ("parliament-001", "label", "against", ["humanitarian"]),
            ("parliament-002", "label", "favor", []),
            ("parliament-003", "label", "none", ["security", "sovereignty"]),
            ("parliament-003", "undo", None, []),
        ]

        # Relabel it with the mouse; the next paragraph's markup stays text.
        page.click("#stance .option[data-name=against]")
        page.click("#frames .option[data-name=security]")  # toggles security off again
        page.click("#accept")
        page.wait_for_selector("#text:has-text('Others insisted')")
        decide("3", "g", "h", "Enter")
        assert "<img src=x" in shown() and "<b>bold</b>" in shown()
        assert page.evaluate("document.querySelectorAll('#main img, #main b').length") == 0
        assert page.evaluate("window.__xss === undefined")

        # Kill the server mid-session; the page's next action fails visibly, nothing is lost.
        workspace.kill()
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.wait_for_selector("#toast.error")
        assert len(records(workspace)) == 6

        # Restart: the annotator resumes exactly where they stopped.
        open_page(workspace.start())
        assert "<img src=x" in shown()
        assert page.text_content("#count-done") == "4" and page.text_content("#count-left") == "2"
        decide("4", "Enter")
        assert shown() == "The debate ends without a vote."
        browser.close()

    saved = records(workspace)
    assert [(r["paragraph_id"], r["action"], r.get("stance"), r["frames"]) for r in saved] == [
        ("parliament-001", "label", "against", ["humanitarian"]),
        ("parliament-002", "label", "favor", []),
        ("parliament-003", "label", "none", ["security", "sovereignty"]),
        ("parliament-003", "undo", None, []),
        ("parliament-003", "label", "against", ["sovereignty"]),
        ("parliament-004", "label", "neutral", ["humanitarian", "gender"]),
        ("parliament-005", "label", "none", []),
    ]
    assert all(r["annotator"] == "tester" for r in saved)


def test_enter_in_a_note_saves_it_and_hands_the_keys_back(workspace):
    url = workspace.start()
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")

        def moved_on(before: str) -> None:
            page.wait_for_selector(f"#text:not([data-id={json.dumps(before)}])")

        first = page.get_attribute("#text", "data-id")
        page.keyboard.press("2")
        page.keyboard.press("n")
        page.keyboard.type("unsure")
        page.keyboard.press("Enter")  # saves the note with the label and leaves the field
        moved_on(first)
        assert page.evaluate("document.activeElement.id") != "note"
        second = page.get_attribute("#text", "data-id")
        page.keyboard.press(" ")  # skips, instead of typing a space into the next note
        moved_on(second)
        third = page.get_attribute("#text", "data-id")
        page.keyboard.press("4")
        page.keyboard.press("Enter")
        moved_on(third)
        page.keyboard.press("Backspace")  # undoes, instead of deleting a character of a note
        page.wait_for_selector(f"#text[data-id={json.dumps(third)}]")
        page.keyboard.press("?")  # opens the codebook, instead of typing a question mark
        page.wait_for_selector("#codebook:not([hidden])")
        assert page.input_value("#note") == ""
        browser.close()

    assert [(r["paragraph_id"], r["action"], r.get("stance"), r.get("note", "")) for r in records(workspace)] == [
        ("parliament-001", "label", "against", "unsure"),
        ("parliament-002", "skip", None, ""),
        ("parliament-003", "label", "none", ""),
        ("parliament-003", "undo", None, ""),
    ]
