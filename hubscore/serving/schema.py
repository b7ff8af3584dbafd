"""The HTTP API's contract: pydantic models generated from a model's manifest, and errors.

`CompanyFeatures` lists every raw feature the run folder's model reads, so the OpenAPI schema
always matches the model being served; responses are static. Validation is strict: no
string-to-number coercion, no NaN or infinity, no negative counts, no unknown fields (a typo
would otherwise be silently missing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import polars as pl
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from hubscore.core.errors import ValidationError
from hubscore.engine.scorer import ID

JSON = "application/json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The Arrow IPC streaming format's media type (IANA-registered by the Arrow project)."""
ARROW_BODY = {
    "schema": {"type": "string", "format": "binary"},
    "description": "An Arrow IPC stream: one row per company, a column per feature named as in "
    "CompanyFeatures (absent columns and nulls are imputed), the same rules as JSON.",
}
MAX_TEXT = 200
"""Longest accepted EMPLOYEE_RANGE / INDUSTRY value: real labels are under 60 characters."""

# Named in the seed design, in this order, with these examples; every other model feature
# follows them, with a neutral example.
SEED_EXAMPLE: dict[str, Any] = {
    ID: 1042,
    "ALEXA_RANK": 250_000,
    "EMPLOYEE_RANGE": "26 to 50",
    "INDUSTRY": "COMPUTER_SOFTWARE",
    "total_actions": 1200.0,
    "total_users": 4.0,
    "actions_per_user": 300.0,
}
SEED_DESCRIPTIONS = {
    ID: "Company id, returned as company_id.",
    "ALEXA_RANK": "Alexa traffic rank (1 = most visited).",
    "EMPLOYEE_RANGE": "Employee bucket, e.g. '26 to 50'; unseen buckets are reported, not refused.",
    "INDUSTRY": "Industry label; unseen labels score as 'other'.",
    "total_actions": "CRM actions in the look-back window.",
    "total_users": "Distinct active users in the look-back window.",
    "actions_per_user": "total_actions / total_users.",
}
INT_RANGES: dict[type[pl.DataType], int] = {
    pl.Int8: 2**7,
    pl.Int16: 2**15,
    pl.Int32: 2**31,
    pl.Int64: 2**63,
    pl.UInt8: 2**8,
    pl.UInt16: 2**16,
    pl.UInt32: 2**32,
    pl.UInt64: 2**64,
}


class BatchTooLarge(Exception):
    """A batch holds more companies than the server accepts."""

    def __init__(self, count: int | None, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(f"a batch holds at most {limit:,} companies, this one {count or 'more'}")


class PredictionResponse(BaseModel):
    """One company's score."""

    company_id: int = Field(examples=[1042])
    prediction: int = Field(
        description="1 if conversion_probability >= the model's decision threshold: by default "
        "within the weekly capacity (the top companies a sales team can call each week)."
    )
    conversion_probability: float = Field(examples=[0.8123], description="float32 precision.")
    confidence: Literal["high", "medium", "low"]
    priority: Literal["very high", "high", "medium", "low"] | None = Field(
        default=None,
        description="The tier of the probability: 'very high' is about a week's top 1% of free "
        "companies (the run's report says how often each tier converted); null for run folders "
        "from before tier thresholds.",
    )
    features_imputed: int = Field(
        description="Features absent or null (an unseen EMPLOYEE_RANGE counts): missing to the "
        "model, never zero usage (trees route them; logistic regression imputes as trained)."
    )
    employee_range_unseen: bool = Field(
        description="EMPLOYEE_RANGE was given but is no known bucket; it was imputed."
    )
    reasons: list[str] | None = Field(
        default=None,
        description="Up to three strongest reasons for, in words from the company's own values "
        "(on /predict with ?explain=true; null when the run folder predates explanations).",
    )
    reason_against: str | None = Field(default=None, description="The strongest reason against.")
    basis: Literal["usage", "profile only", "usage not given"] | None = Field(
        default=None,
        description="'usage': a usage field given shows activity; 'profile only': the usage "
        "fields given say there was none; 'usage not given': no usage field was given.",
    )


class BatchPredictionResponse(BaseModel):
    """Scores for a batch, in request order."""

    predictions: list[PredictionResponse]
    total_count: int
    model_version: str
    timestamp: dt.datetime


class ErrorResponse(BaseModel):
    """A refused or failed request; never a stack trace."""

    detail: Any
    error_id: str | None = None


def is_signed(name: str) -> bool:
    """Return whether a feature may be negative: trends are differences, the rest are counts,
    ranks, shares or durations."""
    return name.startswith("trend_")


def company_model(features: dict[str, pl.DataType]) -> type[BaseModel]:
    """Build `CompanyFeatures`: `id` plus every model feature, optional, in manifest order."""
    names = [ID, *(n for n in SEED_EXAMPLE if n in features), *features]
    fields: dict[str, Any] = {ID: (int, _field(ID, pl.Int64(), required=True))}
    for name in dict.fromkeys(names):
        if name != ID:
            fields[name] = (python_type(features[name]) | None, _field(name, features[name]))
    example = {n: SEED_EXAMPLE.get(n, _example(features.get(n, pl.Int64()))) for n in fields}
    extra: dict[str, Any] = {"examples": [example]}
    config = ConfigDict(extra="forbid", strict=True, json_schema_extra=extra)
    doc = "One company's raw features; absent or null ones are missing, never zero usage."
    return create_model("CompanyFeatures", __config__=config, __doc__=doc, **fields)


def request_model(company: type[BaseModel], *, max_batch: int) -> type[BaseModel]:
    """Build `PredictionRequest`: `{companies: [CompanyFeatures]}`, at most `max_batch` long."""
    example = company.model_json_schema()["examples"][0]
    extra: dict[str, Any] = {"examples": [{"companies": [example]}]}
    config = ConfigDict(extra="forbid", strict=True, json_schema_extra=extra)
    companies = Field(max_length=max_batch, description=f"At most {max_batch:,} companies.")
    # `company` is built at run time, so mypy cannot check it as a type; pydantic can.
    items = list[company]  # type: ignore[valid-type]
    doc = "Companies to score in one call, answered in the same order."
    return create_model(
        "PredictionRequest", __config__=config, __doc__=doc, companies=(items, companies)
    )


def python_type(dtype: pl.DataType) -> type:
    if dtype == pl.String:
        return str
    if dtype == pl.Boolean:
        return bool
    if dtype == pl.Date:
        return dt.date
    # Integer features are numbers that must be whole (`_field` adds multiple_of=1): JSON
    # writers send 50000.0 for 50000. Polars casts them back exactly when the frame is built.
    # A Python validator would do the same at 3x the parse time of a 1,000-company batch.
    return float


def _field(name: str, dtype: pl.DataType, *, required: bool = False) -> Any:
    """Return the pydantic `Field` for one feature: bounds from its dtype and meaning."""
    limits: dict[str, Any] = {}
    if dtype == pl.String:
        limits["max_length"] = MAX_TEXT
    elif dtype.is_integer():
        span = INT_RANGES[type(dtype)]
        # Bounded by the column dtype so an over-large value is a 422, not an overflow later;
        # `lt` a power of two, which a float (the validated type) holds exactly.
        limits["lt"] = span
        signed = dtype.is_signed_integer() and (is_signed(name) or name == ID)
        limits["ge"] = -span if signed else 0
        limits["multiple_of"] = 1
        if name != ID:  # validated as a float (see python_type): never NaN or infinity
            limits["allow_inf_nan"] = False
    elif dtype.is_float():
        limits["allow_inf_nan"] = False
        if not is_signed(name):
            limits["ge"] = 0
    return Field(
        ... if required else None,
        description=SEED_DESCRIPTIONS.get(name, f"{dtype} model feature; null or absent: missing."),
        examples=[SEED_EXAMPLE.get(name, _example(dtype))],
        **limits,
    )


def _example(dtype: pl.DataType) -> Any:
    if dtype == pl.String:
        return "other"
    if dtype == pl.Boolean:
        return False
    if dtype == pl.Date:
        return "2024-01-07"
    return 0 if dtype.is_integer() else 0.0


class Welcome(BaseModel):
    """What `GET /` says: which service, which model, where the docs are."""

    name: str
    version: str
    model_version: str
    docs: str


class Health(BaseModel):
    """What `GET /health` says to a probe."""

    status: Literal["ok"]
    model_loaded: bool
    model_version: str
    uptime_s: float


ARROW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Predictions in request order: JSON, or with `Accept: "
        f"{ARROW_STREAM}` an Arrow IPC stream with one row per company and the "
        "PredictionResponse columns; total_count, model_version and timestamp are in its "
        "schema metadata.",
        "content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}},
    },
    406: {"description": f"`Accept` allows neither {JSON} nor {ARROW_STREAM}."},
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or wrong bearer token (when HUBSCORE_API_TOKEN is set).",
        413: "Body or batch over the limit.",
        422: "Invalid body: field-level messages in `detail` (loc, msg, type).",
        500: "Unexpected error; the log line with the same error_id has the details.",
    }.items()
}


def body_of(model: str, *, arrow: bool = False) -> dict[str, Any]:
    """Return `openapi_extra` declaring a JSON request body of a generated schema (and, with
    `arrow`, the same rows as an Arrow IPC stream)."""
    content: dict[str, Any] = {JSON: {"schema": {"$ref": f"#/components/schemas/{model}"}}}
    if arrow:
        content[ARROW_STREAM] = ARROW_BODY
    return {"requestBody": {"required": True, "content": content}}


async def refuse(request: Request, exc: Exception) -> Response:
    """Return 413 for a batch over the maximum, else 422 with field-level messages."""
    if isinstance(exc, BatchTooLarge):
        return JSONResponse({"detail": str(exc)}, status_code=413)
    if isinstance(exc, ValidationError):  # the core's own checks, e.g. a duplicated id
        detail = [{"loc": ["body", "companies"], "msg": exc.message, "type": "value_error"}]
    else:
        assert isinstance(exc, RequestValidationError)
        # No input values: they may be NaN, which JSON cannot carry.
        detail = [
            {"loc": list(e["loc"]), "msg": _message(e), "type": e["type"]} for e in exc.errors()
        ]
    return JSONResponse({"detail": detail}, status_code=422)


def _message(error: Any) -> str:
    """Return pydantic's message, saying plainly what a fractional integer feature lacks."""
    if error["type"] == "multiple_of":  # only integer features carry multiple_of=1
        return "Input should be a whole number: this feature is an integer"
    return str(error["msg"])
