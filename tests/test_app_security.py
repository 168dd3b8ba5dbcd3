"""Who may talk to the annotation app: its own host names and page only, JSON writes, small bodies,
and refusals that never repeat the request."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from experiments import app as app_module
from experiments.annotate import Session
from experiments.app import MAX_BODY, SECURITY_HEADERS, allowed_hosts, create_app, serve
from experiments.corpus import text_hash
from experiments.paths import DataDir

TEXT = "The union rejected any foreign war on Iran."
HASH = text_hash(TEXT)
CSP = SECURITY_HEADERS["Content-Security-Policy"]


@pytest.fixture
def session(tmp_path, codebook) -> Session:
    root = tmp_path / "data"
    root.mkdir()
    (root / "paragraphs.jsonl").write_text(json.dumps(
        {"id": "d1-001", "doc_id": "d1", "position": 1, "kind": "body", "text": TEXT, "hash": HASH,
         "n_words": 7}) + "\n", encoding="utf-8")
    return Session("maryam", codebook, DataDir(root), ["d1-001"])


@pytest.fixture
def client(session) -> TestClient:
    return TestClient(create_app(session, hosts=["testserver"]))


def written(session: Session) -> bytes:
    return session.file.read_bytes() if session.file.exists() else b""


def label_once(client) -> None:
    """One label, so that an undo would succeed and write a record."""
    assert client.post("/api/label", json={"paragraph_id": "d1-001", "hash": HASH, "stance": "none"}).status_code == 200


# --- other sites and other host names ----------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://testserver.evil.example"},
     {"Origin": "https://testserver"}, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
     {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"}],
    ids=["evil", "null", "suffix", "https", "cross-site", "same-site", "origin-ok-site-not"],
)
def test_a_write_from_another_site_is_refused_with_403_and_writes_nothing(client, session, headers):
    label_once(client)
    before = written(session)
    response = client.post("/api/undo", json={}, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"detail": "refused: the request came from another site"}
    assert response.headers["content-security-policy"] == CSP
    assert written(session) == before
    assert client.get("/api/state", headers=headers).status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1:8765", "testserver:81", ""])
def test_another_host_name_cannot_read_the_state(client, session, host):
    """DNS rebinding: a page whose name now points at this machine sends its own name as Host."""
    for route in ("/api/state", "/api/codebook", "/"):
        response = client.get(route, headers={"Host": host})
        assert response.status_code == 403
        assert response.json() == {"detail": "refused: unexpected Host header"}
        assert TEXT not in response.text
    assert client.post("/api/label", headers={"Host": host},
                       json={"paragraph_id": "d1-001", "hash": HASH, "stance": "none"}).status_code == 403
    assert written(session) == b""


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://testserver"}, {"Origin": "http://TestServer"}, {"Sec-Fetch-Site": "same-origin"},
     {"Sec-Fetch-Site": "none"}, {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}],
)
def test_the_apps_own_page_gets_through(client, session, headers):
    assert client.get("/api/state", headers=headers).json()["paragraph"]["text"] == TEXT
    assert client.post("/api/label", headers=headers,
                       json={"paragraph_id": "d1-001", "hash": HASH, "stance": "none"}).status_code == 200
    assert client.post("/api/undo", json={}, headers=headers).status_code == 200
    assert [json.loads(line)["action"] for line in written(session).splitlines()] == ["label", "undo"]


def test_allowed_hosts_are_the_loopback_names_and_the_listening_address():
    assert allowed_hosts("127.0.0.1", 8765) == ["127.0.0.1:8765", "localhost:8765"]
    assert allowed_hosts("192.168.1.5", 9000) == ["127.0.0.1:9000", "localhost:9000", "192.168.1.5:9000"]
    assert allowed_hosts("::1", 8765) == ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"]
    assert allowed_hosts("localhost", 80) == ["127.0.0.1:80", "localhost:80", "127.0.0.1", "localhost"]


def test_serve_answers_for_its_own_host_and_port_only(session, monkeypatch):
    served = {}
    monkeypatch.setattr(app_module, "check_port", lambda host, port: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: served.update(app=app, host=host, port=port))
    serve(session, host="127.0.0.1", port=8765)
    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    for base in ("http://127.0.0.1:8765", "http://localhost:8765"):
        client = TestClient(served["app"], base_url=base)
        assert client.get("/api/state").status_code == 200
        same = client.post("/api/undo", json={}, headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
        assert same.json() == {"detail": "nothing to undo"}  # past the checks, refused by the session
        assert client.post("/api/undo", json={}, headers={"Origin": "http://evil.example"}).status_code == 403
    for base in ("http://127.0.0.1:8766", "http://evil.example:8765", "http://testserver"):
        assert TestClient(served["app"], base_url=base).get("/api/state").status_code == 403
    assert written(session) == b""


# --- writes need a JSON object ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, kwargs",
    [
        ("/api/undo", {}),
        ("/api/undo", {"content": b"{}"}),  # JSON, but not declared as such
        ("/api/undo", {"content": b"{}", "headers": {"Content-Type": "text/plain"}}),
        ("/api/undo", {"data": {"x": "1"}}),  # what a cross-site HTML form sends
        ("/api/label", {"content": json.dumps({"paragraph_id": "d1-001", "hash": HASH, "stance": "none"}).encode(),
                        "headers": {"Content-Type": "text/plain"}}),
        ("/api/skip", {"files": {"f": ("a.json", b"{}")}}),
    ],
    ids=["undo-no-body", "undo-no-type", "undo-text-plain", "undo-form", "label-text-plain", "skip-multipart"],
)
def test_a_write_without_a_json_body_is_refused_with_415(client, session, route, kwargs):
    label_once(client)
    before = written(session)
    response = client.post(route, **kwargs)
    assert response.status_code == 415
    assert response.json() == {"detail": "send a JSON object with Content-Type: application/json"}
    assert written(session) == before


@pytest.mark.parametrize("body", [b"", b"[]", b"null", b"\"x\"", b"{\"redo\": true}"],
                         ids=["empty", "list", "null", "string", "unknown-key"])
def test_undo_needs_a_json_object_with_nothing_in_it(client, session, body):
    label_once(client)
    before = written(session)
    response = client.post("/api/undo", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert written(session) == before
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/api/undo", content=b"{}", headers=with_charset).status_code == 200


def test_the_page_script_sends_undo_as_json():
    script = (Path(__file__).resolve().parent.parent / "experiments" / "static" / "annotate.js").read_text()
    assert 'act("/api/undo", {}, ' in script
    assert 'headers: body ? { "Content-Type": "application/json" } : {}' in script  # {} is truthy


# --- request size ------------------------------------------------------------------------------------


def test_a_body_over_64_kib_is_refused_with_413_from_its_content_length(client, session):
    note = "x" * MAX_BODY
    response = client.post("/api/label", json={"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "note": note})
    assert response.status_code == 413
    assert response.json() == {"detail": "request body over 64 KiB"}
    assert response.headers["content-security-policy"] == CSP
    assert written(session) == b""
    # Just under the cap the body is read and judged on its content (the note is too long).
    body = json.dumps({"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "note": ""}).encode()
    body = body[:-2] + b"x" * (MAX_BODY - len(body)) + b"\"}"
    assert len(body) == MAX_BODY
    assert client.post("/api/label", content=body, headers={"Content-Type": "application/json"}).status_code == 422


def test_a_chunked_body_without_content_length_is_refused_with_413(client, session):
    def chunks():
        for _ in range(20):
            yield b" " * 8192

    response = client.post("/api/undo", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"detail": "request body over 64 KiB"}


def test_a_streamed_body_is_read_no_further_than_the_cap(session):
    """Straight through ASGI, chunk by chunk: the app stops pulling once it has seen more than 64 KiB."""
    app = create_app(session, hosts=["testserver"])
    pulled, sent = [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b" " * 4096, "more_body": len(pulled) < 100_000}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/undo", "raw_path": b"/api/undo", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                         (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert len(pulled) == MAX_BODY // 4096 + 1
    assert written(session) == b""


# --- refusals never repeat the request ----------------------------------------------------------------


MARK = "MARKER" * 50


@pytest.mark.parametrize(
    "route, body",
    [
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH, "stance": "none", MARK: MARK}),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "note": MARK * 20}),
        ("/api/label", {"paragraph_id": MARK, "hash": HASH}),
        ("/api/label", {"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "frames": MARK}),
        ("/api/skip", [MARK]),
        ("/api/undo", {MARK: 1}),
    ],
    ids=["unknown-key", "long-note", "missing-stance", "frames-not-a-list", "not-an-object", "undo-key"],
)
def test_a_refused_body_gets_a_short_422_that_does_not_repeat_it(client, session, route, body):
    response = client.post(route, json=body)
    assert response.status_code == 422
    assert MARK[:12] not in response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.startswith("invalid request body: ") and len(detail) <= 200
    assert written(session) == b""


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "comment": "x"},
         "invalid request body: unknown key"),
        ({"paragraph_id": "d1-001", "hash": HASH}, "invalid request body: stance: Field required"),
        ({"paragraph_id": "d1-001", "hash": HASH, "stance": "none", "frames": [1]},
         "invalid request body: frames.0: Input should be a valid string"),
    ],
)
def test_a_422_names_the_field_and_the_problem(client, body, detail):
    assert client.post("/api/label", json=body).json() == {"detail": detail}


def test_a_body_that_is_not_json_gets_a_short_422(client):
    response = client.post("/api/label", content=b"{" + MARK.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"detail": "invalid request body: not valid JSON"}
