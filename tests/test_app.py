"""The annotation web app through FastAPI's TestClient: the page and its assets, the JSON
round trip, refused bodies and errors, markup in paragraph text, and the port check."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from experiments.annotate import Session
from experiments.app import SECURITY_HEADERS, check_port, create_app
from experiments.corpus import text_hash
from experiments.errors import UserError
from experiments.paths import DataDir

MARKUP = "<script>alert(1)</script> and <b>x</b> & \"quotes\""
ROWS = [
    ("d1-001", "d1", 1, "headline", "Strikes on Iran Condemned"),
    ("d1-002", "d1", 2, "body", "The union rejected any foreign war on Iran."),
    ("d1-003", "d1", 3, "body", "Sanctions hurt ordinary families more than the state."),
    ("d2-001", "d2", 1, "headline", MARKUP),
    ("d2-002", "d2", 2, "body", "Body with <img src=x onerror=alert(2)> in it."),
]
IDS = [row[0] for row in ROWS]
HASH = {pid: text_hash(text) for pid, _, _, _, text in ROWS}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@pytest.fixture
def data(tmp_path) -> DataDir:
    root = tmp_path / "data"
    root.mkdir()
    (root / "paragraphs.jsonl").write_text(
        "".join(json.dumps({"id": pid, "doc_id": doc, "position": pos, "kind": kind, "text": text,
                            "hash": text_hash(text), "n_words": len(text.split())}) + "\n"
                for pid, doc, pos, kind, text in ROWS),
        encoding="utf-8")
    return DataDir(root)


@pytest.fixture
def session(data, codebook) -> Session:
    return Session("maryam", codebook, data, list(IDS))


@pytest.fixture
def client(session) -> TestClient:
    return TestClient(create_app(session, hosts=["testserver"]))


def records(session: Session) -> list[dict]:
    if not session.file.exists():
        return []
    return [json.loads(line) for line in session.file.read_text(encoding="utf-8").splitlines()]


# --- the page and its assets ------------------------------------------------------------------


def test_page_is_served_with_security_headers(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP == SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert '<script src="/app.js"' in page and 'href="/app.css"' in page
    # No inline script (the CSP would block it anyway) and no inline event handlers.
    for tag, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, flags=re.S):
        assert 'src="' in tag and not body.strip()
    assert not re.search(r"\son[a-z]+\s*=", page, flags=re.I)


@pytest.mark.parametrize(
    ("route", "content_type", "static"),
    [("/app.js", "text/javascript; charset=utf-8", "annotate.js"),
     ("/app.css", "text/css; charset=utf-8", "annotate.css")],
)
def test_script_and_style_sheet_are_served_with_their_types(client, route, content_type, static):
    response = client.get(route)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CSP
    shipped = Path(__file__).resolve().parent.parent / "experiments" / "static" / static
    assert response.content == shipped.read_bytes()


@pytest.mark.parametrize(
    "route",
    ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
     "/static/annotate.html", "/static/annotate.js", "/experiments/app.py", "/annotate.html", "/api", "/api/"],
)
def test_nothing_else_is_served(client, route):
    response = client.get(route)
    assert response.status_code == 404
    assert response.headers["content-security-policy"] == CSP


def test_writes_need_post(client, session):
    assert client.get("/api/undo").status_code == 405
    assert client.get("/api/label").status_code == 405
    assert client.post("/api/state").status_code == 405
    assert records(session) == []


def test_codebook_route(client, codebook):
    response = client.get("/api/codebook")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == codebook.version
    assert [label["name"] for label in body["stance"]["labels"]] == ["favor", "against", "neutral", "none"]
    assert [label["name"] for label in body["frames"]["labels"]] == [
        "humanitarian", "security", "sovereignty", "regime_legitimacy", "resistance", "gender", "economic"]
    assert set(body["stance"]["labels"][0]) == {"name", "key", "definition", "cues"}
    assert body["stance"]["rules"] and body["frames"]["rules"] and body["stance"]["question"]


# --- the round trip ---------------------------------------------------------------------------


def test_state_label_skip_undo_round_trip(client, session):
    state = client.get("/api/state")
    assert state.status_code == 200
    body = state.json()
    assert body["annotator"] == "maryam" and body["can_undo"] is False
    assert body["progress"] == {"done": 0, "skipped": 0, "left": 5, "total": 5}
    p = body["paragraph"]
    assert (p["id"], p["hash"], p["text"]) == ("d1-001", HASH["d1-001"], ROWS[0][4])

    labelled = client.post("/api/label", json={"paragraph_id": p["id"], "hash": p["hash"], "stance": "against",
                                               "frames": ["security", "humanitarian"], "note": "strikes"})
    assert labelled.status_code == 200
    body = labelled.json()
    assert body["paragraph"]["id"] == "d1-002" and body["can_undo"] is True
    assert body["progress"] == {"done": 1, "skipped": 0, "left": 4, "total": 5}

    skipped = client.post("/api/skip", json={"paragraph_id": "d1-002", "hash": HASH["d1-002"], "note": "unsure"})
    assert skipped.status_code == 200
    assert skipped.json()["paragraph"]["id"] == "d1-003"
    assert skipped.json()["progress"] == {"done": 1, "skipped": 1, "left": 3, "total": 5}

    undone = client.post("/api/undo", json={})
    assert undone.status_code == 200
    body = undone.json()
    assert body["paragraph"]["id"] == "d1-002" and body["paragraph"]["previous"] is None
    assert body["progress"] == {"done": 1, "skipped": 0, "left": 4, "total": 5}
    undone = client.post("/api/undo", json={})
    assert undone.json()["paragraph"]["id"] == "d1-001"
    assert undone.json()["paragraph"]["previous"] == {"stance": "against", "frames": ["humanitarian", "security"],
                                                      "note": "strikes", "rationales": []}
    assert undone.json()["can_undo"] is False

    written = records(session)
    assert [(r["action"], r["paragraph_id"]) for r in written] == [
        ("label", "d1-001"), ("skip", "d1-002"), ("undo", "d1-002"), ("undo", "d1-001")]
    assert (written[0]["stance"], written[0]["frames"], written[0]["note"]) == (
        "against", ["humanitarian", "security"], "strikes")
    assert "seconds" in written[0]  # the page's GET /api/state started the clock
    assert written[1]["note"] == "unsure" and "stance" not in written[1]
    assert all(r["annotator"] == "maryam" and r["hash"] == HASH[r["paragraph_id"]] for r in written)
    assert client.get("/api/state").json() == undone.json()


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none", "frames": [],
                        "annotator": "mallory"}),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none", "action": "undo"}),
        ("/api/skip", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none"}),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"]}),  # no stance
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none", "frames": "security"}),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none", "note": "x" * 5001}),
        ("/api/skip", {"hash": HASH["d1-001"]}),
    ],
)
def test_malformed_bodies_are_refused_with_422_and_write_nothing(client, session, route, body):
    response = client.post(route, json=body)
    assert response.status_code == 422
    assert response.headers["content-security-policy"] == CSP
    assert records(session) == []
    assert client.get("/api/state").json()["paragraph"]["id"] == "d1-001"


def test_a_body_that_is_not_json_is_refused(client, session):
    response = client.post("/api/label", content=b"stance=none", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert records(session) == []


@pytest.mark.parametrize(
    ("route", "body", "detail"),
    [
        ("/api/label", {"paragraph_id": "d1-001", "hash": "0" * 16, "stance": "none"},
         "paragraph 'd1-001' changed since the page loaded it; reload the page"),
        ("/api/skip", {"paragraph_id": "d1-001", "hash": "0" * 16},
         "paragraph 'd1-001' changed since the page loaded it; reload the page"),
        ("/api/label", {"paragraph_id": "zz-001", "hash": HASH["d1-001"], "stance": "none"},
         "paragraph 'zz-001' is not in this session's queue"),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "maybe"},
         "unknown stance 'maybe'; use one of favor, against, neutral, none"),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH["d1-001"], "stance": "none", "frames": ["weather"]},
         "unknown frame 'weather'; use any of humanitarian, security, sovereignty, regime_legitimacy, resistance, "
         "gender, economic"),
        ("/api/undo", {}, "nothing to undo"),
    ],
)
def test_user_errors_are_400_with_the_exact_detail(client, session, route, body, detail):
    response = client.post(route, json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert response.headers["content-security-policy"] == CSP
    assert records(session) == []


# --- paragraph text is data, never markup --------------------------------------------------------


def test_markup_in_paragraph_text_comes_back_as_text(client, session):
    for pid in ["d1-001", "d1-002", "d1-003"]:
        client.post("/api/label", json={"paragraph_id": pid, "hash": HASH[pid], "stance": "none"})
    response = client.get("/api/state")
    assert response.headers["content-type"] == "application/json"
    p = response.json()["paragraph"]
    assert p["id"] == "d2-001"
    assert p["text"] == MARKUP
    assert p["title"] == MARKUP  # the headline is the document's title
    assert p["after"]["text"] == "Body with <img src=x onerror=alert(2)> in it."
    # A note with markup is stored as the text it is.
    client.post("/api/label", json={"paragraph_id": "d2-001", "hash": HASH["d2-001"], "stance": "none",
                                    "note": "<b>x</b>"})
    assert records(session)[-1]["note"] == "<b>x</b>"
    assert client.get("/api/state").json()["paragraph"]["before"]["text"] == MARKUP


def test_the_script_never_writes_html(client):
    script = client.get("/app.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "textContent" in script


# --- the port check ------------------------------------------------------------------------------


def test_check_port_refuses_a_port_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UserError) as exc:
            check_port("127.0.0.1", port)
        assert str(exc.value) == (f"cannot listen on 127.0.0.1:{port} (Address already in use); "
                                  "choose another port with --port")


def test_check_port_accepts_a_free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert check_port("127.0.0.1", port) is None
    # The check leaves nothing listening: the port can be bound right after.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as again:
        again.bind(("127.0.0.1", port))
