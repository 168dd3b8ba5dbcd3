"""The annotation app's web server: a few JSON routes over a ``Session`` and one page.

The server answers only the routes below; the page, its script and its
style sheet are files of this package, and paragraph text reaches the page as
JSON that the script puts in place as text, never as markup. The Content
Security Policy forbids inline scripts and any other origin as a second line
of defence.

Only the app's own page may talk to it. A request for another host name
(DNS rebinding) or from another site (``Origin``, ``Sec-Fetch-Site``) gets
403. A write needs a JSON object with ``Content-Type: application/json``, or
gets 415: another site cannot send that type without a CORS preflight, which
the app never grants. A body over 64 KiB gets 413, and no more than that is
read. Refusals are short JSON messages that never repeat the request.
"""

from __future__ import annotations

import socket
from importlib import resources
from typing import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers

from experiments.annotate import Session
from experiments.errors import UserError
from experiments.review import ReviewSession

ASSETS = {
    "/": ("annotate.html", "text/html; charset=utf-8"),
    "/app.js": ("annotate.js", "text/javascript; charset=utf-8"),
    "/app.css": ("annotate.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_BODY = 64 * 1024
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
FETCH_SITES = {"same-origin", "none"}  # "none": the address typed or opened from the terminal


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SpanIn(_Body):
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    text: str = Field(max_length=5000)
    label: str = Field(default="stance", max_length=100)


class LabelIn(_Body):
    paragraph_id: str = Field(max_length=300)
    hash: str = Field(max_length=64)
    stance: str = Field(max_length=100)
    frames: list[str] = Field(default_factory=list, max_length=50)
    note: str = Field(default="", max_length=5000)
    rationales: list[SpanIn] = Field(default_factory=list, max_length=50)


class AdjudicateIn(_Body):
    paragraph_id: str = Field(max_length=300)
    hash: str = Field(max_length=64)
    take: str | None = Field(default=None, max_length=100)
    stance: str | None = Field(default=None, max_length=100)
    frames: list[str] = Field(default_factory=list, max_length=50)
    reason: str = Field(default="", max_length=5000)
    rationales: list[SpanIn] = Field(default_factory=list, max_length=50)


class SkipIn(_Body):
    paragraph_id: str = Field(max_length=300)
    hash: str = Field(max_length=64)
    note: str = Field(default="", max_length=5000)


class UndoIn(_Body):
    pass


def allowed_hosts(host: str, port: int) -> list[str]:
    """The ``Host`` header values of the app listening on ``host:port``.

    >>> allowed_hosts("127.0.0.1", 8765)
    ['127.0.0.1:8765', 'localhost:8765']
    >>> allowed_hosts("::1", 8765)
    ['127.0.0.1:8765', 'localhost:8765', '[::1]:8765']
    """
    names = dict.fromkeys(["127.0.0.1", "localhost", f"[{host}]" if ":" in host else host])
    # Browsers leave the default port out of Host and Origin.
    return [f"{name}:{port}" for name in names] + (list(names) if port == 80 else [])


def _error(detail: str, status: int) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class _Guard:
    """ASGI middleware: the Host, Origin and Sec-Fetch-Site checks and the body-size cap.

    The body (at most ``MAX_BODY``) is read here, counting the bytes of a
    chunked body as they arrive, and handed on to the app.
    """

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = {host.lower() for host in hosts}
        self.origins = {f"http://{host}" for host in self.hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if headers.get("host", "").lower() not in self.hosts:
            return await _error("refused: unexpected Host header", 403)(scope, receive, send)
        origin, site = headers.get("origin"), headers.get("sec-fetch-site")
        if (origin is not None and origin.lower() not in self.origins) or site not in (None, *FETCH_SITES):
            return await _error("refused: the request came from another site", 403)(scope, receive, send)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return await _error(f"request body over {MAX_BODY // 1024} KiB", 413)(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY:
                return await _error(f"request body over {MAX_BODY // 1024} KiB", 413)(scope, receive, send)
            more = message.get("more_body", False)
        body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return body.pop() if body else await receive()

        await self.app(scope, replay, send)


class _JsonWrites(APIRoute):
    """A route whose writes need ``Content-Type: application/json``: a cross-site form cannot send that."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if request.method in WRITES and kind != "application/json":
                return _error("send a JSON object with Content-Type: application/json", 415)
            return await handler(request)

        return checked


def _invalid(exc: RequestValidationError) -> str:
    """The first problem of a refused body, in a few words that never repeat the input (a key is input too)."""
    error = next(iter(exc.errors()), {})
    if error.get("type") == "json_invalid":
        return "invalid request body: not valid JSON"
    if error.get("type") == "extra_forbidden":
        return "invalid request body: unknown key"
    field = ".".join(str(part) for part in error.get("loc", ())[1:])  # after "body": our field names and indices
    return f"invalid request body: {field or 'body'}: {error.get('msg', 'invalid')}"[:200]


def create_app(session: Session | ReviewSession, hosts: Iterable[str]) -> FastAPI:
    """The FastAPI application for one annotator's (or adjudicator's) session, answering only for ``hosts``."""
    app = FastAPI(title="annotate", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.route_class = _JsonWrites
    assets = {route: (resources.files("experiments").joinpath("static", name).read_bytes(), kind)
              for route, (name, kind) in ASSETS.items()}
    app.add_middleware(_Guard, hosts=list(hosts))

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError):
        return _error(_invalid(exc), 422)

    def asset(route: str):
        body, kind = assets[route]
        return lambda: Response(body, media_type=kind)

    for route in assets:
        app.add_api_route(route, asset(route), methods=["GET"], include_in_schema=False)

    @app.get("/api/state")
    def state() -> dict:
        return session.state()

    @app.get("/api/codebook")
    def codebook() -> dict:
        return session.codebook_view()

    if isinstance(session, ReviewSession):
        @app.post("/api/adjudicate")
        def adjudicate(body: AdjudicateIn) -> dict:
            return session.adjudicate(body.paragraph_id, body.hash, body.reason, body.take, body.stance,
                                      body.frames, [span.model_dump() for span in body.rationales])
    else:
        @app.post("/api/label")
        def label(body: LabelIn) -> dict:
            return session.label(body.paragraph_id, body.hash, body.stance, body.frames, body.note,
                                 [span.model_dump() for span in body.rationales])

        @app.get("/api/learning")
        def learning() -> dict:
            return session.learning()

    @app.post("/api/skip")
    def skip(body: SkipIn) -> dict:
        return session.skip(body.paragraph_id, body.hash, body.note)

    @app.post("/api/undo")
    def undo(body: UndoIn) -> dict:
        return session.undo()

    return app


def check_port(host: str, port: int) -> None:
    """Refuse a port out of range or taken, before the app starts, with a one-line error."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UserError(f"--port {port}: use a port from 1 to 65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with --port") from None


def serve(session: Session | ReviewSession, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app until Ctrl+C. Every decision is already on disk when the page moves on."""
    import uvicorn

    check_port(host, port)
    doing = "reviewing disagreements" if isinstance(session, ReviewSession) else "annotating"
    print(f"{doing} as {session.annotator}: http://{host}:{port}/  "
          f"({session.progress()['left']} to do; decisions go to {session.file}; Ctrl+C stops)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: {host} lets other machines reach the app, which has no login", flush=True)
    app = create_app(session, allowed_hosts(host, port))
    if isinstance(session, Session):
        session.start_learning()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if isinstance(session, Session):
            session.stop_learning()
