"""`/predict` bodies: Arrow IPC streams in and out, negotiated by Content-Type and Accept, with
the same numbers, rules and errors as JSON; and the fast JSON path against pydantic's."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hubscore.serving.api import Service, create_app
from hubscore.serving.bodies import Bodies
from hubscore.serving.schema import ARROW_STREAM, JSON, BatchTooLarge

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's httpx2 notice, as in test_serve.py
    from fastapi.testclient import TestClient

GOLDEN = Path(__file__).parent / "golden" / "xgboost"  # explained, Int and Float features
RUN = GOLDEN / "run"
ARROW = {"content-type": ARROW_STREAM}


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(RUN, max_batch=100)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def service(app: Any) -> Service:
    return app.service  # type: ignore[no-any-return]


def arrow_body(rows: list[dict[str, Any]] | pa.Table) -> bytes:
    # Every row's keys, not the first row's alone (pyarrow's from_pylist).
    table = rows if isinstance(rows, pa.Table) else pl.from_dicts(rows).to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def read_arrow(content: bytes) -> pa.Table:
    return pa.ipc.open_stream(content).read_all()


def valid_companies(service: Service) -> list[dict[str, Any]]:
    """The golden rows the API accepts, typed as the model types them, NaN/inf as null."""
    frame = pl.read_parquet(GOLDEN / "input.parquet")
    typed = frame.select(pl.col(n).cast(t, strict=False) for n, t in service.dtypes.items())
    rows = [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
        for r in typed.to_dicts()
    ]
    signed = ("id", "trend_")
    return [
        r
        for r in rows
        if all(
            not isinstance(v, int | float) or isinstance(v, bool) or v >= 0 or k.startswith(signed)
            for k, v in r.items()
        )
    ]


def test_an_arrow_batch_scores_like_the_same_json_batch(
    client: TestClient, service: Service
) -> None:
    companies = valid_companies(service)[:40]
    assert len(companies) >= 30
    as_json = client.post("/predict", json={"companies": companies})
    as_arrow = client.post("/predict", content=arrow_body(companies), headers=ARROW)
    assert as_json.status_code == as_arrow.status_code == 200, as_arrow.text
    assert as_arrow.headers["content-type"] == ARROW_STREAM  # answered in the request's format
    table = read_arrow(as_arrow.content)
    expected = pl.DataFrame(as_json.json()["predictions"])
    got = pl.from_arrow(table)
    assert isinstance(got, pl.DataFrame)
    assert got.columns == expected.columns
    assert got["company_id"].to_list() == [c["id"] for c in companies]  # request order
    # float32 on both: the JSON carries the shortest text of the same float32.
    assert got["conversion_probability"].to_list() == (
        expected["conversion_probability"].cast(pl.Float32).to_list()
    )
    assert got.drop("conversion_probability").equals(
        expected.drop("conversion_probability").cast(got.drop("conversion_probability").schema)
    )
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    envelope = as_json.json()
    assert metadata["total_count"] == "40"
    assert metadata["model_version"] == envelope["model_version"]


def test_arrow_columns_may_be_any_lossless_type_and_absent_ones_are_imputed(
    client: TestClient, service: Service
) -> None:
    companies = valid_companies(service)[:5]
    partial = [{"id": c["id"], "total_actions": 1.5 * i} for i, c in enumerate(companies)]
    table = pa.Table.from_pylist(partial).cast(
        pa.schema([("id", pa.int32()), ("total_actions", pa.float32())])
    )
    arrow = client.post("/predict", content=arrow_body(table), headers=ARROW)
    as_json = client.post("/predict", json={"companies": partial})
    assert arrow.status_code == 200, arrow.text
    got = pl.from_arrow(read_arrow(arrow.content))
    assert isinstance(got, pl.DataFrame)
    assert got["features_imputed"].to_list() == [
        p["features_imputed"] for p in as_json.json()["predictions"]
    ]


@pytest.mark.parametrize(
    ("accept", "arrow_in", "answer"),
    [
        ("", False, JSON),
        ("", True, ARROW_STREAM),
        ("*/*", True, ARROW_STREAM),
        (ARROW_STREAM, False, ARROW_STREAM),
        (JSON, True, JSON),
        (f"{JSON};q=0.5, {ARROW_STREAM}", False, ARROW_STREAM),
        (f"{JSON}, {ARROW_STREAM};q=0.2", True, JSON),
        ("text/html", False, None),
    ],
)
def test_the_answer_follows_accept_else_the_request_format(
    client: TestClient, service: Service, accept: str, arrow_in: bool, answer: str | None
) -> None:
    companies = valid_companies(service)[:2]
    headers = {"accept": accept} if accept else {}
    if arrow_in:
        response = client.post("/predict", content=arrow_body(companies), headers=ARROW | headers)
    else:
        response = client.post("/predict", json={"companies": companies}, headers=headers)
    if answer is None:
        assert response.status_code == 406
        assert ARROW_STREAM in response.json()["detail"]
        return
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(answer)
    if answer == ARROW_STREAM:
        assert read_arrow(response.content).num_rows == 2
    else:
        assert len(response.json()["predictions"]) == 2


BAD_ROWS = [
    {"id": 1, "total_actions": -3.0},
    {"id": 2, "days_active": 2.5},
    {"id": 3, "total_actions": math.nan},
    {"id": 4, "total_actions": math.inf},
    {"id": 5, "EMPLOYEE_RANGE": "x" * 201},
    {"id": 6, "ALEXA_RANK": 2.0**63},
]


@pytest.mark.parametrize("bad", BAD_ROWS, ids=lambda row: next(iter(row.keys() - {"id"})))
def test_an_arrow_body_is_refused_with_the_errors_of_the_same_json_rows(
    client: TestClient, bad: dict[str, Any]
) -> None:
    rows = [{"id": 100}, bad]
    arrow = client.post("/predict", content=arrow_body(rows), headers=ARROW)
    as_json = client.post(
        "/predict", content=json.dumps({"companies": rows}).encode(), headers={"content-type": JSON}
    )
    assert arrow.status_code == as_json.status_code == 422
    assert arrow.headers["content-type"] == JSON  # errors are always JSON
    assert arrow.json() == as_json.json()
    assert arrow.json()["detail"][0]["loc"][:3] == ["body", "companies", 1]


def test_unknown_missing_and_mistyped_arrow_columns_get_the_json_errors(
    client: TestClient,
) -> None:
    for rows in (
        [{"id": 1, "total_action": 5.0}],  # unknown: a typo is never silently imputed
        [{"total_actions": 5.0}],  # no id
        [{"id": 1, "total_actions": "many"}],  # text for a number
        [{"id": 1.0, "total_actions": 5.0}],  # a float id
    ):
        arrow = client.post("/predict", content=arrow_body(rows), headers=ARROW)
        as_json = client.post("/predict", json={"companies": rows})
        assert arrow.status_code == as_json.status_code == 422, rows
        assert arrow.json() == as_json.json()


def test_arrow_numbers_that_are_not_finite_or_break_a_bound_are_refused(
    client: TestClient, service: Service
) -> None:
    # A column without nulls is judged whole (floats all at once), one with nulls value by value.
    given = {"total_actions": 5.0, "trend_actions": -0.5}
    good = [row | given for row in valid_companies(service)[:3]]
    bad = [(name, value) for name in given for value in (math.nan, math.inf, -math.inf)]
    for name, value in [*bad, ("total_actions", -1.0)]:  # a count is >= 0; a trend is signed
        rows = [good[0], {**good[1], name: value}, good[2]]
        answer = client.post("/predict", content=arrow_body(rows), headers=ARROW)
        assert answer.status_code == 422, (name, value)
        (error,) = answer.json()["detail"]
        assert error["loc"] == ["body", "companies", 1, name], (name, value)
    assert client.post("/predict", content=arrow_body(good), headers=ARROW).status_code == 200


def test_a_broken_stream_an_empty_one_and_a_large_one(client: TestClient) -> None:
    broken = client.post("/predict", content=b"not arrow at all", headers=ARROW)
    assert broken.status_code == 422
    (error,) = broken.json()["detail"]
    assert error["loc"] == ["body"] and error["type"] == "arrow_invalid"
    empty = client.post(
        "/predict", content=arrow_body(pa.table({"id": pa.array([], pa.int64())})), headers=ARROW
    )
    assert empty.status_code == 200
    table = read_arrow(empty.content)
    assert table.num_rows == 0 and "conversion_probability" in table.column_names
    large = client.post(
        "/predict", content=arrow_body([{"id": i} for i in range(101)]), headers=ARROW
    )
    assert large.status_code == 413
    assert large.json()["detail"] == "a batch holds at most 100 companies, this one 101"


def test_arrow_answers_carry_reasons_on_request(client: TestClient, service: Service) -> None:
    companies = valid_companies(service)[:3]
    response = client.post("/predict?explain=true", content=arrow_body(companies), headers=ARROW)
    table = read_arrow(response.content)
    assert {"reasons", "reason_against", "basis"} <= set(table.column_names)
    as_json = client.post("/predict?explain=true", json={"companies": companies}).json()
    assert table.column("reasons").to_pylist() == [p["reasons"] for p in as_json["predictions"]]


def test_openapi_documents_both_formats(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert set(operation["requestBody"]["content"]) == {JSON, ARROW_STREAM}
    assert set(operation["responses"]["200"]["content"]) == {JSON, ARROW_STREAM}
    assert "406" in operation["responses"]


# --- the fast JSON path decides exactly as pydantic does -------------------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2.0, 2.5, -0.0, 1e300, 2.0**31, 2.0**63, "7", "26 to 50", "x" * 201]),
)


WHOLE = st.one_of(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1).map(float))
PLAUSIBLE = {  # mostly what the model's schema accepts, sometimes anything at all
    "ALEXA_RANK": WHOLE,
    "days_active": WHOLE,
    "EMPLOYEE_RANGE": st.one_of(st.none(), st.text(max_size=5)),
    "total_actions": st.floats(0, 1e12),
    "trend_actions": st.floats(-50, 50),
    "alexa_no_rank": st.one_of(st.none(), st.booleans()),
}


VALID_ROW = st.fixed_dictionaries({"id": st.integers(-(2**63), 2**63 - 1)}, optional=PLAUSIBLE)
MESSY_ROW = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-(2**64), 2**64), VALUES)},
    optional={**{name: st.one_of(value, VALUES) for name, value in PLAUSIBLE.items()}}
    | {"nonsense": VALUES},
)


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(st.one_of(VALID_ROW, VALID_ROW, MESSY_ROW), max_size=4))
def test_the_fast_json_path_accepts_refuses_and_reads_as_pydantic_does(
    service: Service, rows: list[dict[str, Any]]
) -> None:
    body = json.dumps({"companies": rows}).encode()  # NaN and Infinity as Python writes them
    # Every body through the fast path, however small (a server sends small ones to pydantic).
    bodies = Bodies(
        service.scorer.feature_dtypes,
        company=service.company,
        request=service.request,
        max_batch=service.max_batch,
        fast_from_bytes=0,
    )

    def outcome(read: Any) -> Any:
        try:
            return read()
        except RequestValidationError as exc:
            return ("422", exc.errors())
        except BatchTooLarge as exc:
            return ("413", str(exc))

    fast = outcome(lambda: bodies.read_json(body, batch=True))
    slow = outcome(lambda: bodies._validated(lambda: bodies._pydantic_json(body, batch=True)))
    event("accepted" if isinstance(slow, pl.DataFrame) else "refused")
    if isinstance(slow, pl.DataFrame):
        assert isinstance(fast, pl.DataFrame) and fast.equals(slow)
    else:
        assert fast == slow
