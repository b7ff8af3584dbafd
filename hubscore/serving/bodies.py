"""Request and response bodies of `/predict`: JSON (msgspec) and Arrow IPC streams.

Both formats become one Polars frame of `id` plus the model's features, checked by one set of
columnar rules that mirror the pydantic schema (schema.py): whole numbers for integer features,
no NaN or infinity, no negative counts, integer bounds, text at most `MAX_TEXT` characters, no
unknown fields. A body that passes is scored at once. A body that does not is handed to the
pydantic models, which give the field-level 422 errors the API has always given (for Arrow,
the rows as Python values): the fast path decides only what is certainly valid, so errors,
their `loc`s and messages are the same whichever format or path a body takes.

    JSON  ── msgspec.json (typed, strict) ──┐
                                            ├─▶ columnar checks ─▶ frame for Scorer
    Arrow ── pyarrow.ipc (zero copy) ───────┘        │ (any doubt)
                                                     └─▶ pydantic: 422 with field errors
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping
from typing import Any

import msgspec
import polars as pl
import pyarrow as pa
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from hubscore.engine.scorer import ID
from hubscore.serving.schema import (
    ARROW_STREAM,
    INT_RANGES,
    JSON,
    MAX_TEXT,
    BatchTooLarge,
    is_signed,
)


def request_is_arrow(content_type: str) -> bool:
    """Return whether a request body is an Arrow IPC stream; anything else is read as JSON
    (as before Arrow bodies existed: `curl -d` sends form-encoded JSON)."""
    return content_type.split(";", 1)[0].strip().lower() == ARROW_STREAM


def answer_in_arrow(accept: str, *, default: bool) -> bool | None:
    """Return whether to answer in Arrow per the `Accept` header; None when it allows neither.

    The higher quality value wins; a tie, a wildcard or no header answer in `default` (the
    request's own format).
    """
    quality = {JSON: -1.0, ARROW_STREAM: -1.0}
    wildcard = -1.0
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        q = next((_q(p) for p in params if p.lower().startswith("q=")), 1.0)
        media = media.lower()
        if media in quality:
            quality[media] = max(quality[media], q)
        elif media in ("*/*", "application/*"):
            wildcard = max(wildcard, q)
    json_q = quality[JSON] if quality[JSON] >= 0 else wildcard
    arrow_q = quality[ARROW_STREAM] if quality[ARROW_STREAM] >= 0 else wildcard
    if not accept.strip():
        return default
    if max(json_q, arrow_q) <= 0:  # neither named nor covered, or both refused (q=0)
        return None
    return default if json_q == arrow_q else arrow_q > json_q


def _q(param: str) -> float:
    try:
        return min(max(float(param[2:]), 0.0), 1.0)
    except ValueError:
        return 1.0


def not_acceptable() -> JSONResponse:
    """Return the 406 for an `Accept` header that allows no format this API writes."""
    return JSONResponse(
        {"detail": f"the response can be {JSON} or {ARROW_STREAM}; Accept allows neither"},
        status_code=406,
    )


class Bodies:
    """Read request bodies into frames and write response frames, for one served model."""

    def __init__(
        self,
        features: Mapping[str, pl.DataType],
        *,
        company: type[BaseModel],
        request: type[BaseModel],
        max_batch: int,
    ) -> None:
        self.dtypes: dict[str, pl.DataType] = {ID: pl.Int64(), **features}
        self.company, self.request, self.max_batch = company, request, max_batch
        struct = _company_struct(self.dtypes)
        self.json_company = msgspec.json.Decoder(struct)
        # `struct` is built at run time, so mypy cannot check it as a type; msgspec can.
        companies = list[struct]  # type: ignore[valid-type]
        envelope = msgspec.defstruct(
            "Request", [("companies", companies)], forbid_unknown_fields=True, gc=False
        )
        self.json_request: msgspec.json.Decoder[Any] = msgspec.json.Decoder(envelope)
        self.fields = operator.attrgetter(*self.dtypes)
        self.checks = _checks(self.dtypes)

    def read_json(self, body: bytes, *, batch: bool) -> pl.DataFrame:
        """Return the companies of a JSON body (`{"companies": [...]}`, or one company)."""
        try:
            if batch:
                companies = self.json_request.decode(body).companies
            else:
                companies = [self.json_company.decode(body)]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return self._validated(lambda: self._pydantic_json(body, batch=batch))
        self._check_size(len(companies))
        rows = [self.fields(company) for company in companies]
        columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in self.dtypes]
        given = [_json_dtype(name, dtype) for name, dtype in self.dtypes.items()]
        # strict=False: an id beyond int64 becomes null, which the checks refuse.
        frame = pl.DataFrame(
            [
                pl.Series(name, column, dtype=dtype, strict=False)
                for name, dtype, column in zip(self.dtypes, given, columns, strict=True)
            ]
        )
        accepted = self._accepted(frame)
        if accepted is None:
            return self._validated(lambda: self._pydantic_json(body, batch=batch))
        return accepted

    def read_arrow(self, body: bytes) -> pl.DataFrame:
        """Return the companies of an Arrow IPC stream body: one row per company."""
        try:
            table = pa.ipc.open_stream(body).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body",),
                        "msg": f"Invalid Arrow IPC stream: {exc}",
                        "type": "arrow_invalid",
                    }
                ]
            ) from None
        self._check_size(table.num_rows)
        frame = _decoded(table)
        unknown = [name for name in frame.columns if name not in self.dtypes]
        known = frame.schema
        wrong = [
            n for n, t in known.items() if n in self.dtypes and not _fits(n, t, self.dtypes[n])
        ]
        if not unknown and not wrong:
            absent = [pl.lit(None, t).alias(n) for n, t in self.dtypes.items() if n not in known]
            accepted = self._accepted(frame.with_columns(absent) if absent else frame)
            if accepted is not None:
                return accepted
        rows = table.to_pylist()
        return self._validated(lambda: self._pydantic_rows(rows))

    def write_arrow(self, frame: pl.DataFrame, metadata: Mapping[str, str]) -> bytes:
        """Return `frame` as an Arrow IPC stream, `metadata` in its schema."""
        table = frame.to_arrow().replace_schema_metadata(dict(metadata))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue())

    def _check_size(self, count: int) -> None:
        if count > self.max_batch:
            raise BatchTooLarge(count, self.max_batch)

    def _accepted(self, frame: pl.DataFrame) -> pl.DataFrame | None:
        """Return the frame in the model's dtypes when every rule holds, else None."""
        if frame.height and not frame.select(self.checks).item():
            return None
        # Lossless: every integer feature is whole and within its dtype, ids are integers.
        return frame.select(pl.col(n).cast(t) for n, t in self.dtypes.items())

    def _validated(self, validate: Any) -> pl.DataFrame:
        """Run pydantic's validation for its errors; a body it accepts becomes the frame."""
        try:
            companies: list[BaseModel] = validate()
        except PydanticError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            too_long = [e for e in errors if e["type"] == "too_long" and e["loc"] == ("companies",)]
            if too_long:
                raise BatchTooLarge(
                    too_long[0]["ctx"].get("actual_length"), self.max_batch
                ) from None
            # Inputs and contexts are dropped: they may hold NaN, which JSON cannot carry.
            raise RequestValidationError(
                [{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
            ) from None
        return pl.from_dicts([company.__dict__ for company in companies], schema=self.dtypes)

    def _pydantic_json(self, body: bytes, *, batch: bool) -> list[BaseModel]:
        if batch:
            return list(self.request.model_validate_json(body).__dict__["companies"])
        return [self.company.model_validate_json(body)]

    def _pydantic_rows(self, rows: list[dict[str, Any]]) -> list[BaseModel]:
        return list(self.request.model_validate({"companies": rows}).__dict__["companies"])


def _company_struct(dtypes: Mapping[str, pl.DataType]) -> type[msgspec.Struct]:
    """A msgspec type for one company: strict types only; values are checked as columns."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [(ID, int)]
    for name, dtype in dtypes.items():
        if name != ID:
            fields.append((name, _python_type(dtype) | None, None))
    return msgspec.defstruct("CompanyFeatures", fields, forbid_unknown_fields=True, gc=False)


def _python_type(dtype: pl.DataType) -> Any:
    if dtype == pl.String:
        return str
    if dtype == pl.Boolean:
        return bool
    if dtype == pl.Date:
        return dt.date
    return float  # integer features too: JSON writers send 50000.0 for 50000 (schema.py)


def _json_dtype(name: str, dtype: pl.DataType) -> pl.DataType:
    """The dtype a JSON-decoded column arrives in: ids int64, other numbers float64."""
    if name == ID:
        return pl.Int64()
    if dtype == pl.String or dtype == pl.Boolean or dtype == pl.Date:
        return dtype
    return pl.Float64()


def _decoded(table: pa.Table) -> pl.DataFrame:
    """Return an Arrow table as a Polars frame, dictionary-encoded text as plain text."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    categorical = [
        n for n, t in frame.schema.items() if t == pl.Categorical or isinstance(t, pl.Enum)
    ]
    return frame.with_columns(pl.col(categorical).cast(pl.String)) if categorical else frame


def _fits(name: str, given: pl.DataType, wanted: pl.DataType) -> bool:
    """Return whether a given column's dtype can hold the feature without a conversion pydantic
    would refuse (numbers for numbers, text for text; all-null columns for anything)."""
    if name == ID:  # a whole float is still no integer to pydantic's strict int
        return given.is_integer() and given != pl.UInt64
    if given == pl.Null:
        return True
    if wanted == pl.String or wanted == pl.Boolean or wanted == pl.Date:
        return given == wanted
    if given == pl.UInt64:
        return False  # may exceed int64: left to pydantic's bounds
    return bool(given.is_integer() or given.is_float())


def _checks(dtypes: Mapping[str, pl.DataType]) -> pl.Expr:
    """One boolean expression: whether every value of every column follows the schema."""
    rules: list[pl.Expr] = [pl.col(ID).is_not_null() & (pl.col(ID).cast(pl.Float64) < 2.0**63)]
    rules.append(pl.col(ID).cast(pl.Float64) >= -(2.0**63))
    for name, dtype in dtypes.items():
        if name == ID:
            continue
        value = pl.col(name)
        if dtype == pl.String:
            ok = value.cast(pl.String).str.len_chars() <= MAX_TEXT
        elif dtype == pl.Boolean or dtype == pl.Date:
            continue
        else:
            number = value.cast(pl.Float64)
            ok = number.is_finite()
            if dtype.is_integer():
                span = float(INT_RANGES[type(dtype)])
                low = -span if dtype.is_signed_integer() and is_signed(name) else 0.0
                ok = ok & (number == number.floor()) & (number >= low) & (number < span)
            elif not is_signed(name):
                ok = ok & (number >= 0.0)
        rules.append(value.is_null() | ok)
    return pl.all_horizontal(rules).all()
