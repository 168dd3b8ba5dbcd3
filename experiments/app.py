"""The annotation app's web server: a few JSON routes over a ``Session`` and one page.

The server answers only the routes below; the page, its script and its
style sheet are files of this package, and paragraph text reaches the page as
JSON that the script puts in place as text, never as markup. The Content
Security Policy forbids inline scripts and any other origin as a second line
of defence.
"""

from __future__ import annotations

import socket
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from experiments.annotate import Session
from experiments.errors import UserError

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


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(_Body):
    paragraph_id: str = Field(max_length=300)
    hash: str = Field(max_length=64)
    stance: str = Field(max_length=100)
    frames: list[str] = Field(default_factory=list, max_length=50)
    note: str = Field(default="", max_length=5000)


class SkipIn(_Body):
    paragraph_id: str = Field(max_length=300)
    hash: str = Field(max_length=64)
    note: str = Field(default="", max_length=5000)


def create_app(session: Session) -> FastAPI:
    """The FastAPI application for one annotator's session."""
    app = FastAPI(title="annotate", docs_url=None, redoc_url=None, openapi_url=None)
    assets = {route: (resources.files("experiments").joinpath("static", name).read_bytes(), kind)
              for route, (name, kind) in ASSETS.items()}

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

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

    @app.post("/api/label")
    def label(body: LabelIn) -> dict:
        return session.label(body.paragraph_id, body.hash, body.stance, body.frames, body.note)

    @app.post("/api/skip")
    def skip(body: SkipIn) -> dict:
        return session.skip(body.paragraph_id, body.hash, body.note)

    @app.post("/api/undo")
    def undo() -> dict:
        return session.undo()

    return app


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken, before the app starts, with a one-line error."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another port with --port") from None


def serve(session: Session, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app until Ctrl+C. Every decision is already on disk when the page moves on."""
    import uvicorn

    check_port(host, port)
    print(f"annotating as {session.annotator}: http://{host}:{port}/  "
          f"({session.progress()['left']} to do; decisions go to {session.file}; Ctrl+C stops)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: {host} lets other machines reach the app, which has no login", flush=True)
    uvicorn.run(create_app(session), host=host, port=port, log_level="warning", access_log=False)
