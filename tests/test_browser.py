"""The annotation app used as a person uses it: headless Chromium, keyboard and mouse, reloads, a killed server,
another site's page, the model that learns while labelling, review, and a wide screen and a phone.

Needs Debian's ``chromium`` (``/usr/bin/chromium``) and the ``playwright``
Python package, which drives it (no browser download). Without chromium the
test is skipped, unless ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that
a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
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
    """``python -m experiments annotate`` in a child process, as a user starts it.

    ``annotator`` and ``source`` are left out of the command when ``None`` (review
    mode takes ``--review --adjudicator NAME`` instead); ``start(*extra)`` adds
    further options, such as ``--learn off``.
    """

    def __init__(self, data: Path, source: Path | None, log: Path, annotator: str | None = "tester"):
        self.data, self.source, self.log, self.annotator = data, source, log, annotator
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self, *extra: str) -> str:
        self.port = free_port()
        command = [sys.executable, "-m", "experiments", "annotate", "--data", str(self.data), "--port", str(self.port)]
        if self.annotator is not None:
            command += ["--annotator", self.annotator]
        if self.source is not None:
            command += ["--source", str(self.source)]
        command += list(extra)
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


LEARN_OFF = ("--learn", "off")  # no background training: the tests that do not need a model stay fast


def test_label_undo_reload_and_a_killed_server_lose_nothing(workspace):
    url = workspace.start(*LEARN_OFF)
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
        open_page(workspace.start(*LEARN_OFF))
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
    url = workspace.start(*LEARN_OFF)
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


# ---------------------------------------------------------------- helpers of the tests below

PARAGRAPHS = ARTICLE.split("\n\n")


def get_json(url: str, path: str) -> dict:
    with urllib.request.urlopen(url + path, timeout=10) as response:
        return json.loads(response.read())


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


def decide(page, *keys: str) -> str:
    """Press ``keys`` and wait until the server has answered with another paragraph; return its id."""
    before = page.get_attribute("#text", "data-id")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_selector(f"#text:not([data-id={json.dumps(before)}])")
    return page.get_attribute("#text", "data-id")


def wait_for_model(url: str, version: int = 1, timeout: float = 90) -> dict:
    """Poll /api/learning until the background trainer has made model ``version``; return the panel's data."""
    deadline = time.monotonic() + timeout
    while True:
        learning = get_json(url, "api/learning")["learning"]
        assert learning["status"] != "failed", learning["error"]
        if learning["version"] >= version:
            return learning
        assert time.monotonic() < deadline, f"no model v{version} within {timeout} s: {learning}"
        time.sleep(0.3)


# ---------------------------------------------------------------- another site cannot drive the app

EVIL_PAGE = """<!doctype html>
<html><body>
<iframe name="sink"></iframe>
<form id="undo-form" method="POST" action="APP/api/undo" enctype="text/plain" target="sink">
  <input name='{"a' value='":1}'>
</form>
<script>
const app = "APP";
const results = {};
async function attempt(name, run) {
  try { results[name] = await run(); } catch (error) { results[name] = `refused: ${error.name}`; }
}
(async () => {
  await attempt("undo_no_cors", async () => (await fetch(`${app}/api/undo`, {
    method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: "{}"})).type);
  await attempt("label_json", async () => (await fetch(`${app}/api/label`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(LABEL)})).status);
  await attempt("read_state", async () => JSON.stringify(await (await fetch(`${app}/api/state`)).json()));
  await attempt("read_state_no_cors", async () => {
    const response = await fetch(`${app}/api/state`, {mode: "no-cors"});
    return `${response.type}:${(await response.text()).length}`;
  });
  await new Promise((resolve) => {
    document.querySelector("iframe").addEventListener("load", resolve, {once: true});
    setTimeout(resolve, 5000);
    document.getElementById("undo-form").submit();
  });
  window.results = results;
  document.body.dataset.done = "true";
})();
</script>
</body></html>
"""


@pytest.fixture
def hostile_site(tmp_path):
    """A second local web server, on another port, serving ``evil.html``; yields (folder, port)."""
    folder = tmp_path / "evil"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_page_of_another_origin_can_neither_write_nor_read(workspace, hostile_site):
    url = workspace.start(*LEARN_OFF)
    app = url.rstrip("/")
    folder, evil_port = hostile_site
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        open_app(page, url)
        second = decide(page, "2", "h", "Enter")
        assert page.text_content("#count-done") == "1"
        saved = records(workspace)
        assert [(r["paragraph_id"], r["action"]) for r in saved] == [("parliament-001", "label")]

        # The hostile page knows the paragraph on screen (ids and hashes are guessable), so a label
        # that got through would be valid and saved.
        shown = get_json(url, "api/state")["paragraph"]
        label = {"paragraph_id": shown["id"], "hash": shown["hash"], "stance": "favor", "frames": []}
        (folder / "evil.html").write_text(EVIL_PAGE.replace("APP", app).replace("LABEL", json.dumps(label)))
        # Same site on another port (only Origin tells it apart), then another site altogether.
        for host in ("127.0.0.1", "localhost"):
            evil = context.new_page()
            answers: list[tuple[str, str, int]] = []
            evil.on("response", lambda r: answers.append((r.request.method, r.url, r.status))
                    if r.url.startswith(app) else None)
            evil.goto(f"http://{host}:{evil_port}/evil.html")
            evil.wait_for_selector("body[data-done=true]", timeout=20_000)
            results = evil.evaluate("window.results")
            assert results["undo_no_cors"] == "opaque"  # sent, but the page learns nothing of the answer
            assert results["label_json"].startswith("refused"), results  # the CORS preflight is never granted
            assert results["read_state"].startswith("refused"), results
            assert results["read_state_no_cors"] == "opaque:0"
            # Every request that reached the app was turned away by its origin check.
            writes = [(method, address) for method, address, _ in answers if method == "POST"]
            assert writes.count(("POST", f"{app}/api/undo")) == 2, answers  # the fetch and the form
            assert all(status == 403 for _, _, status in answers), answers
            assert ("POST", f"{app}/api/label") not in writes
            evil.close()

        assert records(workspace) == saved  # no undo, no label
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.get_attribute("#text", "data-id") == second
        assert page.text_content("#count-done") == "1" and page.text_content("#count-left") == "5"
        assert page.is_enabled("#undo")
        browser.close()


# ---------------------------------------------------------------- the model that learns while labelling

def test_retraining_reranks_the_rest_of_the_queue_and_suggests(workspace):
    url = workspace.start("--learn", "embed_logreg", "--retrain-every", "2", "--order", "uncertain")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_app(page, url)
        # No model yet: the uncertain queue starts in reading order.
        assert page.get_attribute("#text", "data-id") == "parliament-001"
        page.wait_for_selector("#learn-status:has-text('waiting for labels')")
        decide(page, "1", "Enter")
        on_screen = decide(page, "2", "h", "Enter")  # two stances: enough for the probe to learn
        assert on_screen == "parliament-003"

        learning = wait_for_model(url)
        assert learning["version"] == 1 and learning["trained_on"] == 2 and learning["model"] == "embed_logreg"
        upcoming = learning["upcoming"]
        # The paragraph on screen keeps its place; the rest is ranked again.
        assert sorted(upcoming) == ["parliament-004", "parliament-005", "parliament-006"]
        # On this article the first model is least sure of 005; were the ranking still reading order,
        # the checks below could not tell a re-ranked queue from the old one.
        assert upcoming != sorted(upcoming)
        assert page.get_attribute("#text", "data-id") == on_screen
        page.wait_for_selector("#learn-status[data-version='1']", timeout=10_000)  # the page polls every 2 s
        status = page.text_content("#learn-status")
        assert "embed_logreg" in status and "v1" in status and "from 2 labels" in status, status
        assert "least sure first" in page.text_content("#learn-quality")

        # The next paragraphs follow the new ranking, and carry the new model's suggestion.
        served = decide(page, "3", "Enter")
        assert served == upcoming[0]
        assert get_json(url, "api/learning")["learning"]["upcoming"] == upcoming[1:]
        assert "embed_logreg v1, learned from 2 labels" in page.text_content("#suggest-info")
        assert page.eval_on_selector_all(".prob-text", "els => els.length") == 4 + 7
        suggested = get_json(url, "api/state")["paragraph"]["suggestion"]
        assert page.eval_on_selector_all("#stance .option[aria-pressed=true]", "els => els.map(e => e.dataset.name)") \
            == [suggested["stance"]]
        decide(page, "Enter")  # accept the suggestion as it stands
        browser.close()

    saved = records(workspace)
    assert [r["paragraph_id"] for r in saved] == ["parliament-001", "parliament-002", on_screen, upcoming[0]]
    assert all("suggestion" not in r for r in saved[:3])  # served before any model existed
    last = saved[3]
    assert last["suggestion"]["learner"] == "embed_logreg" and last["suggestion"]["version"] == 1
    assert last["suggestion"]["trained_on"] == 2 and last["suggestion"]["stance"] == suggested["stance"]
    assert last["accepted_suggestion"] is True
    assert (last["stance"], last["frames"]) == (suggested["stance"], suggested["frames"])


# ---------------------------------------------------------------- rationales: words selected with the mouse

CHAR_BOXES = """([first, last]) => {
  const box = document.getElementById("text");
  const rectOf = (index) => {
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    let seen = 0, node;
    while ((node = walker.nextNode())) {
      if (index < seen + node.length) {
        const range = document.createRange();
        range.setStart(node, index - seen);
        range.setEnd(node, index - seen + 1);
        const r = range.getBoundingClientRect();
        return {left: r.left, right: r.right, middle: (r.top + r.bottom) / 2};
      }
      seen += node.length;
    }
    throw new Error(`character ${index} is past the paragraph`);
  };
  return [rectOf(first), rectOf(last)];
}"""


def drag_over(page, text: str, words: str) -> None:
    """Select ``words`` of the paragraph on screen with the mouse: press on the first letter, release on the last."""
    start = text.index(words)
    first, last = page.evaluate(CHAR_BOXES, [start, start + len(words) - 1])
    page.mouse.move(first["left"] + 1, first["middle"])
    page.mouse.down()
    page.mouse.move(last["right"] - 1, last["middle"], steps=8)
    page.mouse.up()


def test_rationales_selected_with_the_mouse_are_saved_and_come_back_on_undo(workspace):
    url = workspace.start(*LEARN_OFF)
    text = PARAGRAPHS[1]  # "Members of parliament argued on Tuesday over whether sanctions on Iran should be eased."
    stance_words, frame_words = "argued on Tuesday", "sanctions on Iran should be eased"
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_app(page, url)
        assert decide(page, "4", "Enter") == "parliament-002"
        assert page.text_content("#text") == text

        def marks() -> list[tuple[str, str]]:
            return page.eval_on_selector_all("#text mark", "els => els.map(e => [e.textContent, e.className])")

        def chips() -> list[tuple[str, str]]:
            return page.eval_on_selector_all(
                "#spans .chip", "els => els.map(e => [e.querySelector('.chip-text').textContent, "
                "e.querySelector('.chip-label').textContent])")

        assert page.input_value("#rationale-for") == "stance"
        drag_over(page, text, stance_words)
        page.wait_for_selector("#spans .chip")
        assert marks() == [[stance_words, "r-stance"]]
        assert chips() == [[f"“{stance_words}”", "stance"]]
        assert page.evaluate("window.getSelection().isCollapsed")  # the selection became the highlight

        page.select_option("#rationale-for", "economic")
        drag_over(page, text, frame_words)  # the paragraph now holds a <mark>: offsets still count characters
        page.wait_for_selector("#spans .chip:nth-child(2)")
        assert marks() == [[stance_words, "r-stance"], [frame_words, "r-frame"]]
        assert chips() == [[f"“{stance_words}”", "stance"], [f"“{frame_words}”", "economic"]]
        assert page.text_content("#text") == text  # highlighting changed no character

        assert page.evaluate("document.activeElement.id") != "rationale-for"  # the keys label again
        decide(page, "2", "e", "Enter")
        label = records(workspace)[-1]
        assert (label["paragraph_id"], label["stance"], label["frames"]) == ("parliament-002", "against", ["economic"])
        assert [(s["text"], s["label"]) for s in label["rationales"]] == [
            (stance_words, "stance"), (frame_words, "economic")]
        for span in label["rationales"]:
            assert text[span["start"]:span["end"]] == span["text"]
        assert label["rationales"][0]["start"] == text.index(stance_words)

        # Undo: the paragraph comes back with its highlights, chips and labels.
        page.keyboard.press("Backspace")
        page.wait_for_selector("#text[data-id=parliament-002]")
        page.wait_for_selector("#text mark")
        assert marks() == [[stance_words, "r-stance"], [frame_words, "r-frame"]]
        assert chips() == [[f"“{stance_words}”", "stance"], [f"“{frame_words}”", "economic"]]
        assert page.eval_on_selector_all("#frames .option[aria-pressed=true]", "els => els.map(e => e.dataset.name)") \
            == ["economic"]

        # Removing a chip and accepting again saves only the span left.
        page.click("#spans .chip:nth-child(1) .chip-remove")
        assert marks() == [[frame_words, "r-frame"]]
        decide(page, "Enter")
        browser.close()

    relabel = records(workspace)[-1]
    assert relabel["action"] == "label" and relabel["paragraph_id"] == "parliament-002"
    start = text.index(frame_words)
    assert relabel["rationales"] == [{"start": start, "end": start + len(frame_words), "text": frame_words,
                                      "label": "economic"}]


# ---------------------------------------------------------------- review: settling disagreements in the app

@pytest.fixture
def review_server(workspace):
    """The review app on the workspace's data folder (no annotator, no source)."""
    server = Server(workspace.data, None, workspace.log, annotator=None)
    yield server
    server.kill()


def write_labels(data: Path, annotator: str, *labels: dict) -> None:
    corpus = {p["id"]: p for p in map(json.loads, (data / "paragraphs.jsonl").read_text(encoding="utf-8").splitlines())}
    folder = data / "annotations"
    folder.mkdir(exist_ok=True)
    with open(folder / f"{annotator}.jsonl", "w", encoding="utf-8") as out:
        for label in labels:
            record = {"paragraph_id": label["paragraph_id"], "hash": corpus[label["paragraph_id"]]["hash"],
                      "annotator": annotator, "timestamp": "2025-01-01T00:00:00+00:00", **label}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def test_review_takes_a_side_and_sets_new_labels_with_a_reason(review_server):
    data = review_server.data
    corpus = [json.loads(line) for line in (data / "paragraphs.jsonl").read_text(encoding="utf-8").splitlines()]
    first, second, agreed = corpus[0], corpus[1], corpus[2]
    words = first["text"].split()[0]
    span = {"start": 0, "end": len(words), "text": words, "label": "stance"}
    write_labels(data, "maryam",
                 {"paragraph_id": first["id"], "stance": "favor", "frames": ["humanitarian"], "rationales": [span],
                  "note": "the filmmakers back the strikes"},
                 {"paragraph_id": second["id"], "stance": "against", "frames": []},
                 {"paragraph_id": agreed["id"], "stance": "none", "frames": []})
    write_labels(data, "reza",
                 {"paragraph_id": first["id"], "stance": "against", "frames": ["security"]},
                 {"paragraph_id": second["id"], "stance": "neutral", "frames": ["sovereignty"]},
                 {"paragraph_id": agreed["id"], "stance": "none", "frames": []})
    url = review_server.start("--review", "--adjudicator", "lead")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_app(page, url)
        assert page.text_content("#brand") == "Review" and page.text_content("#annotator") == "lead"
        assert page.is_visible("#review") and page.is_hidden("#undo") and page.is_hidden("#learning")
        assert page.text_content("#count-left") == "2"  # the paragraph both labelled alike is not served
        assert page.get_attribute("#text", "data-id") == first["id"]
        assert page.text_content("#text") == first["text"]
        sides = page.eval_on_selector_all("#sides .side", "els => els.map(e => e.innerText)")
        assert len(sides) == 2
        assert "take maryam's labels" in sides[0] and "favor · humanitarian" in sides[0]
        assert f"“{words}” (stance)" in sides[0] and "Note: the filmmakers back the strikes" in sides[0]
        assert "take reza's labels" in sides[1] and "against · security" in sides[1] and "Note:" not in sides[1]
        # Nothing is pre-selected: the adjudicator's own reading starts blank.
        assert page.eval_on_selector_all(".option[aria-pressed=true]", "els => els.length") == 0

        assert decide(page, "a") == second["id"]  # a: take the first side
        sides = page.eval_on_selector_all("#sides .side", "els => els.map(e => e.innerText)")
        assert "against · no frames" in sides[0] and "neutral · sovereignty" in sides[1]
        page.keyboard.press("3")
        page.keyboard.press("h")
        page.keyboard.press("Enter")  # new labels without a reason are refused, visibly
        page.wait_for_selector("#toast.error:has-text('reason')")
        assert page.get_attribute("#text", "data-id") == second["id"]
        page.keyboard.press("n")
        page.keyboard.type("a call for outside help, not for strikes")
        page.keyboard.press("Enter")
        page.wait_for_selector("#finished:not([hidden])")
        assert "No open disagreement left: 2 adjudicated this session" in page.text_content("#finished-text")
        browser.close()

    saved = [json.loads(line) for line in (data / "adjudications.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["paragraph_id"], r["stance"], r["frames"], r["adjudicator"], r["reason"]) for r in saved] == [
        (first["id"], "favor", ["humanitarian"], "lead", "took maryam's labels"),
        (second["id"], "neutral", ["humanitarian"], "lead", "a call for outside help, not for strikes"),
    ]
    assert saved[0]["rationales"] == [span]  # the side taken brings its rationale along
    assert [r["hash"] for r in saved] == [first["hash"], second["hash"]]


# ---------------------------------------------------------------- the page fits the screen, wide and on a phone

LAYOUT = """(width) => {
  const box = (node) => {
    const r = node.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  };
  return {
    footer: box(document.querySelector("footer.keys")),
    text: box(document.getElementById("text")),
    labels: box(document.querySelector(".labels")),
    accept: box(document.getElementById("accept")),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    // The elements reaching past the window's right edge (the innermost ones say why the page scrolls).
    past: [...document.body.querySelectorAll("*")].filter((node) => node.getBoundingClientRect().right > width + 0.5)
      .map((node) => `${node.tagName.toLowerCase()}${node.id ? "#" + node.id : ""}.${node.className} `
                     + `${Math.round(node.getBoundingClientRect().right)}`),
    options: [...document.querySelectorAll(".option")].map((option) => ({
      name: option.dataset.name,
      box: box(option),
      parts: [...option.querySelectorAll(".name, .prob-text")].map((part) => ({
        kind: part.className, text: part.textContent, box: box(part),
        scrollWidth: part.scrollWidth, clientWidth: part.clientWidth})),
    })),
  };
}"""


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def inside(inner: dict, outer: dict, slack: float = 0.5) -> bool:
    return (inner["left"] >= outer["left"] - slack and inner["right"] <= outer["right"] + slack
            and inner["top"] >= outer["top"] - slack and inner["bottom"] <= outer["bottom"] + slack)


def check_layout(page, width: int) -> dict:
    """What must hold at any screen size: the key bar covers nothing, names and percentages are never cut."""
    layout = page.evaluate(LAYOUT, width)
    for name in ("text", "labels", "accept"):
        assert not overlap(layout["footer"], layout[name]), (name, layout["footer"], layout[name])
    assert layout["scrollWidth"] <= width, f"the page scrolls sideways ({layout['scrollWidth']} px): {layout['past']}"
    parts = [(option, part) for option in layout["options"] for part in option["parts"]]
    assert sum(part["kind"] == "prob-text" for _, part in parts) == 4 + 7  # the suggestion's percentages are shown
    viewport = {"left": 0, "right": width, "top": -1e9, "bottom": 1e9}
    for option, part in parts:
        assert inside(part["box"], option["box"]), (option["name"], part)
        assert inside(part["box"], viewport), (option["name"], part)
        assert part["scrollWidth"] <= part["clientWidth"], (option["name"], part)
    return layout


def test_the_label_page_fits_a_wide_screen_and_a_phone(workspace, tmp_path):
    url = workspace.start("--learn", "codebook_logreg", "--retrain-every", "1")  # suggests from the first label on
    shots = Path("/tmp/browser-shots")  # for a person to look at
    shots.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        open_app(page, url)
        decide(page, "2", "h", "Enter")
        wait_for_model(url)
        decide(page, " ")  # the next paragraph is served with the model's suggestion
        page.wait_for_selector(".prob-text")
        page.wait_for_selector("#learn-status[data-version='1']")
        # The "Skipped" toast has faded (it would cover the suggestion line in the screenshot).
        page.wait_for_function("() => getComputedStyle(document.getElementById('toast')).opacity === '0'")
        page.mouse.move(0, 0)
        layout = check_layout(page, 1280)
        # A wide screen shows the whole paragraph and the Accept button without scrolling.
        assert 0 <= layout["text"]["top"] and layout["text"]["bottom"] <= 800, layout["text"]
        assert layout["accept"]["bottom"] <= 800, layout["accept"]
        page.screenshot(path=tmp_path / "wide.png")
        page.screenshot(path=tmp_path / "wide-full.png", full_page=True)
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")  # the sticky labels, scrolled
        check_layout(page, 1280)

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2).new_page()
        open_app(phone, url)
        phone.wait_for_selector(".prob-text")
        layout = check_layout(phone, 390)
        assert 0 <= layout["text"]["top"] < 844 - 60, layout["text"]  # reading starts on the first screen
        phone.screenshot(path=tmp_path / "phone.png", full_page=True)
        phone.screenshot(path=tmp_path / "phone-first.png")
        browser.close()
    for name in ("wide.png", "wide-full.png", "phone.png", "phone-first.png"):
        shutil.copy(tmp_path / name, shots / name)
