"""`hubscore serve`: the HTTP prediction API on the same scoring core as `hubscore score`.

Requests are validated by pydantic models generated from the served model's manifest
(serve_schema.py), then scored by `Scorer.score_frame`, the body of the `Scorer.score_batch`
that every front end calls, so the API's numbers equal the batch command's. Bodies are parsed
and validated in one pass by pydantic-core (`model_validate_json`) rather than FastAPI's
`json.loads` plus Python-level validation: about 1.6x faster on 1,000-company batches, where
validation costs more than scoring.

    uvicorn --factory hubscore.serving.api:app_from_env   # HUBSCORE_SERVE_MODEL=models/latest
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import polars as pl
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubscore._version import __version__
from hubscore.core.atomic import signals_handled
from hubscore.core.errors import ArtifactError, ConfigError
from hubscore.core.errors import ValidationError as HubscoreValidationError
from hubscore.engine import encoding
from hubscore.engine.reasons import BASIS, REASON_COLUMNS
from hubscore.engine.scorer import (
    CONFIDENCE,
    ID,
    PREDICTION,
    PRIORITY,
    PROBABILITY,
    Scorer,
    load_scorer,
    now,
    with_probabilities,
)
from hubscore.serving.bodies import Bodies, answer_in_arrow, not_acceptable, request_is_arrow
from hubscore.serving.docs import add_offline_docs
from hubscore.serving.schema import (
    ARROW_RESPONSES,
    ARROW_STREAM,
    ERRORS,
    JSON,
    BatchPredictionResponse,
    BatchTooLarge,
    Health,
    PredictionResponse,
    Welcome,
    body_of,
    company_model,
    refuse,
    request_model,
)

MAX_BATCH = 10_000
BODY_BYTES_PER_COMPANY = 4096
"""Body budget per company: one with every feature of today's models is under 1.5 KB."""
OPEN_PATHS = frozenset({"/health"})
"""Paths a bearer token never guards: load balancer and orchestrator probes."""
ENV_MODEL, ENV_MAX_BATCH, ENV_THREADS = (
    "HUBSCORE_SERVE_MODEL",
    "HUBSCORE_SERVE_MAX_BATCH",
    "HUBSCORE_SERVE_THREADS",
)
ENV_TOKEN = "HUBSCORE_API_TOKEN"


class Service:
    """A loaded model behind the API: read JSON or Arrow bodies and score them with the core."""

    def __init__(self, scorer: Scorer, *, max_batch: int) -> None:
        self.scorer = scorer
        self.max_batch = max_batch
        self.company = company_model(scorer.feature_dtypes)
        self.request = request_model(self.company, max_batch=max_batch)
        self.bodies = Bodies(
            scorer.feature_dtypes, company=self.company, request=self.request, max_batch=max_batch
        )
        self.dtypes = self.bodies.dtypes
        self.explains = _can_explain(scorer)
        # Score once now: the first call pays for lazy setup (~100 ms), not the first client.
        # The two response shapes (with and without reasons) are kept for empty Arrow batches.
        one = self.bodies.read_json(b'{"id": 0}', batch=False)
        self.empty = {
            flag: self.score(one, scored_at=now(), explain=flag).clear() for flag in (False, True)
        }
        self.started = time.monotonic()

    def score(
        self, frame: pl.DataFrame, *, scored_at: datetime, explain: bool = False
    ) -> pl.DataFrame:
        """Score companies (a frame of `id` and the features) in order into the
        `PredictionResponse` columns."""
        # Text folded once, for the matrix and the imputation counts; encoded once, for the
        # score and the reasons.
        text = encoding.text_codes(frame, self.scorer.spec)
        keys, matrix = self.scorer.prepare(frame, text=text)
        probabilities = with_probabilities(keys, self.scorer.run_model(matrix))
        scored = self.scorer.label(probabilities, scored_at=scored_at)
        response = [scored.get_column(ID).alias("company_id")]
        labels = (PREDICTION, PROBABILITY, CONFIDENCE, PRIORITY)  # no priority in old folders
        response += [scored.get_column(name) for name in labels if name in scored.columns]
        out = pl.DataFrame(response).hstack(self.imputed(frame, text))
        return out.hstack(self.reasons(frame, matrix)) if explain and self.explains else out

    def reasons(self, frame: pl.DataFrame, matrix: np.ndarray) -> list[pl.Series]:
        """Return `reasons` (a list of up to three), `reason_against` and `basis`."""
        explained = self.scorer.explain_encoded(frame, matrix)
        listed = explained.select(pl.concat_list(REASON_COLUMNS[:3]).list.drop_nulls())
        return [
            listed.to_series().alias("reasons"),
            explained.get_column(REASON_COLUMNS[3]),
            explained.get_column(BASIS),
        ]

    def imputed(self, frame: pl.DataFrame, text: encoding.TextCodes) -> list[pl.Series]:
        """Return `features_imputed` and `employee_range_unseen`, by the encoder's own rules
        (`text`: the frame's text codes)."""
        spec = self.scorer.spec
        count = np.isnan(text.ordinal).astype(np.int64) + text.industry_missing
        partly_null = []
        for name in (n.name for n in spec.numeric):
            nulls = frame.get_column(name).null_count()  # metadata: no query
            if nulls == frame.height:  # every row (always so for one company)
                count += 1
            elif nulls:
                partly_null.append(name)
        if partly_null:  # one query for all of them
            nulls_per_row = pl.sum_horizontal(pl.col(partly_null).is_null())
            count += frame.select(nulls_per_row).to_series().to_numpy()
        return [
            pl.Series("features_imputed", count, dtype=pl.Int64),
            pl.Series("employee_range_unseen", text.employee_unseen, dtype=pl.Boolean),
        ]

    def predict(
        self,
        body: bytes,
        *,
        batch: bool,
        state: MutableMapping[str, Any],
        explain: bool = False,
        arrow_in: bool = False,
        arrow_out: bool = False,
    ) -> bytes:
        """Turn a request body into a response body (one company, or a batch envelope).

        One company is always explained (when the run folder can be); a batch on request.
        A batch may come and go as an Arrow IPC stream: one row per company, the envelope's
        other fields in the schema's metadata.
        """
        frame = (
            self.bodies.read_arrow(body) if arrow_in else self.bodies.read_json(body, batch=batch)
        )
        at = now()
        state["companies"] = frame.height
        explained = explain or not batch
        scored = self.score(frame, scored_at=at, explain=explained) if frame.height else None
        head = {
            "total_count": frame.height,
            "model_version": self.scorer.manifest.model_version,
            "timestamp": at.isoformat(),
        }
        if arrow_out:
            out = scored if scored is not None else self.empty[explained]
            return self.bodies.write_arrow(out, {k: str(v) for k, v in head.items()})
        scores = scored.write_json().encode() if scored is not None else b"[]"
        if not batch:
            return scores[1:-1]  # the one row of a one-row JSON array: identical formatting
        return (
            b'{"predictions":'
            + scores
            + b","
            + json.dumps(head, separators=(",", ":")).encode()[1:]
        )


class Guard:
    """ASGI middleware: authorise, refuse oversized bodies, log each request, hide crashes."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, state = time.perf_counter(), scope.setdefault("state", {})
        status: list[int] = []

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            refusal = self.authorise(scope) or self.check_length(scope)
            body = b""
            if refusal is None:
                body, refusal = await self.read_body(receive)
            if refusal is not None:
                await refusal(scope, receive, send_logged)
            else:
                await self.app(scope, replay(body, receive), send_logged)
        except Exception:
            state["error_id"] = error_id = uuid.uuid4().hex[:12]
            log_line(event="error", error_id=error_id, traceback=traceback.format_exc())
            if not status:
                content = {"detail": "internal server error", "error_id": error_id}
                await JSONResponse(content, status_code=500)(scope, receive, send_logged)
        finally:
            log_line(
                event="request",
                method=scope["method"],
                path=scope["path"],
                status=status[0] if status else 500,
                duration_ms=round((time.perf_counter() - start) * 1000, 3),
                companies=state.get("companies"),
                **({"error_id": state["error_id"]} if "error_id" in state else {}),
            )

    def authorise(self, scope: Scope) -> JSONResponse | None:
        """Refuse a request without the bearer token; compare in constant time."""
        if self.token is None or scope["path"] in OPEN_PATHS:
            return None
        scheme, _, given = header(scope, b"authorization").partition(b" ")
        if hmac.compare_digest(given.strip(), self.token) and scheme.lower() == b"bearer":
            return None
        return JSONResponse(
            {"detail": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def check_length(self, scope: Scope) -> JSONResponse | None:
        """Refuse a body whose declared Content-Length is over the limit, before reading it."""
        declared = header(scope, b"content-length")
        if not declared:
            return None
        if not declared.isdigit():
            return JSONResponse({"detail": "Content-Length is not a number"}, status_code=400)
        return self.too_large() if int(declared) > self.max_body_bytes else None

    async def read_body(self, receive: Receive) -> tuple[bytes, JSONResponse | None]:
        """Read the whole body, stopping at the limit (chunked bodies declare no length)."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app sees an empty body and its disconnect
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return b"", self.too_large()
            more = message.get("more_body", False)
        return b"".join(chunks), None

    def too_large(self) -> JSONResponse:
        """Return the 413 for an oversized body."""
        limit = self.max_body_bytes
        return JSONResponse({"detail": f"body over {limit:,} bytes"}, status_code=413)


def _can_explain(scorer: Scorer) -> bool:
    """Build the explainer now; a run folder from before explanations serves without reasons."""
    try:
        scorer.explainer()
    except ArtifactError:
        return False
    return True


def replay(body: bytes, receive: Receive) -> Receive:
    """Return a `receive` that yields the already-read body once, then the client's messages."""
    sent = False

    async def receive_replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_replayed


def header(scope: Scope, name: bytes) -> bytes:
    """Return a request header's value, or b"" when absent."""
    return next((value for key, value in scope["headers"] if key == name), b"")


def log_line(**fields: Any) -> None:
    """Write one JSON object as one line on stderr (the structured access/error log)."""
    print(json.dumps({"ts": time.time(), **fields}, default=str), file=sys.stderr, flush=True)


class ScoringAPI(FastAPI):
    """FastAPI with the request schemas of the served model merged into its OpenAPI document."""

    service: Service

    def openapi(self) -> dict[str, Any]:
        """Return the OpenAPI document, listing the model's features with examples."""
        if self.openapi_schema is None:
            schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self.routes,
            )
            request = self.service.request.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request.pop("$defs", {}))
            components["PredictionRequest"] = request
            self.openapi_schema = schema
        return self.openapi_schema


def create_app(
    run_dir: Path,
    *,
    max_batch: int = MAX_BATCH,
    token: str | None = None,
    max_body_bytes: int | None = None,
    threads: int = 1,
) -> FastAPI:
    """Load and verify a run folder and return the API serving it.

    Args:
        max_body_bytes: refuse larger bodies (413); None: `BODY_BYTES_PER_COMPANY * max_batch`.
        threads: onnxruntime intra-op threads per request.
    """
    if max_batch < 1:
        raise ConfigError(
            f"max_batch must be >= 1, got {max_batch}", hint="pass --max-batch 1 or more"
        )
    service = Service(load_scorer(run_dir, threads=threads), max_batch=max_batch)
    version = service.scorer.manifest.model_version
    app = ScoringAPI(
        title="hubscore",
        version=__version__,
        description=f"Conversion scores of free-tier companies; model {version}.",
        docs_url=None,  # FastAPI's own pages load from a CDN: add_offline_docs serves them
        redoc_url=None,
    )
    add_offline_docs(app)
    app.service = service
    limit = max_body_bytes or BODY_BYTES_PER_COMPANY * max_batch + 65536
    app.add_middleware(Guard, token=token, max_body_bytes=limit)
    for refused in (RequestValidationError, HubscoreValidationError, BatchTooLarge):
        app.add_exception_handler(refused, refuse)

    @app.get("/", response_model=Welcome)
    def welcome() -> Welcome:
        """Say which service and model this is and where the docs are."""
        return Welcome(name="hubscore", version=__version__, model_version=version, docs="/docs")

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Report liveness and the loaded model (open even when a token is set)."""
        uptime = round(time.monotonic() - service.started, 3)
        return Health(status="ok", model_loaded=True, model_version=version, uptime_s=uptime)

    @app.post(
        "/predict",
        response_model=BatchPredictionResponse,
        responses={**ERRORS, **ARROW_RESPONSES},
        openapi_extra=body_of("PredictionRequest", arrow=True),
    )
    async def predict(request: Request) -> Response:
        """Score a batch of companies, in request order.

        The body is JSON, or with `Content-Type: application/vnd.apache.arrow.stream` an
        Arrow IPC stream with one row per company and a column per feature (absent columns
        and nulls are imputed). The answer is JSON, or an Arrow IPC stream of the prediction
        columns when `Accept` prefers it (by default, in the request's format).
        """
        return await scored(request, batch=True)

    @app.post(
        "/predict/single",
        response_model=PredictionResponse,
        responses=ERRORS,
        openapi_extra=body_of("CompanyFeatures"),
    )
    async def predict_single(request: Request) -> Response:
        """Score one company."""
        return await scored(request, batch=False)

    async def scored(request: Request, *, batch: bool) -> Response:
        body, state = await request.body(), request.scope["state"]
        if batch:
            explain = request.query_params.get("explain", "false").lower() in ("true", "1")
            arrow_in = request_is_arrow(request.headers.get("content-type", ""))
            arrow_out = answer_in_arrow(request.headers.get("accept", ""), default=arrow_in)
            if arrow_out is None:
                return not_acceptable()
            # Off the event loop, so probes are answered while a large batch scores.
            out = await run_in_threadpool(
                functools.partial(
                    service.predict,
                    body,
                    batch=True,
                    state=state,
                    explain=explain,
                    arrow_in=arrow_in,
                    arrow_out=arrow_out,
                )
            )
            return Response(out, media_type=ARROW_STREAM if arrow_out else JSON)
        else:
            # One company is about 3 ms of CPU, nearly all Python under the GIL, so a thread
            # buys no parallelism; the hop added 1-3 ms per call on a busy 2-core host
            # (bench/bench_serve.py). Probes wait at most that long.
            out = service.predict(body, batch=False, state=state)
        return Response(out, media_type="application/json")

    return app


def app_from_env() -> FastAPI:
    """Build the app from HUBSCORE_SERVE_* variables (uvicorn's factory for several workers)."""
    try:
        run_dir = Path(os.environ[ENV_MODEL])
        max_batch = int(os.environ.get(ENV_MAX_BATCH, MAX_BATCH))
        threads = int(os.environ.get(ENV_THREADS, 1))
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            f"{ENV_MODEL} is required and {ENV_MAX_BATCH}/{ENV_THREADS} are integers: {exc}",
            hint="start the server with hubscore serve",
        ) from None
    token = os.environ.get(ENV_TOKEN) or None
    return create_app(run_dir, max_batch=max_batch, token=token, threads=threads)


def serve(
    run_dir: Path,
    *,
    host: str,
    port: int,
    workers: int = 1,
    max_batch: int = MAX_BATCH,
    threads: int = 1,
) -> None:
    """Verify the model, then run uvicorn until SIGINT/SIGTERM; a signalled stop is clean."""
    app = create_app(
        run_dir, max_batch=max_batch, token=os.environ.get(ENV_TOKEN) or None, threads=threads
    )
    options: dict[str, Any] = {"host": host, "port": port, "access_log": False, "log_level": "info"}
    with quiet_stop():
        if workers == 1:
            uvicorn.run(app, **options)
            return
        # Worker processes cannot receive an app object: they rebuild it from the environment,
        # from the real folder verified above (not `latest`, which a `train` may move).
        assert isinstance(app, ScoringAPI)
        os.environ.update(
            {
                ENV_MODEL: str(app.service.scorer.run_dir),
                ENV_MAX_BATCH: str(max_batch),
                ENV_THREADS: str(threads),
            }
        )
        uvicorn.run("hubscore.serving.api:app_from_env", factory=True, workers=workers, **options)


@contextlib.contextmanager
def quiet_stop() -> Iterator[None]:
    """Make the signal uvicorn re-raises after its graceful shutdown a no-op: exit 0, no trace."""

    def stopped(signum: int, frame: FrameType | None) -> None:
        """Do nothing: uvicorn has already shut down when it re-raises the signal."""

    with signals_handled(stopped):
        yield
