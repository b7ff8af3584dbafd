"""`hubscore serve`: every endpoint and refusal in process, parity with the batch scorer, and
one real server process on a loopback port."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from hubscore.cli import app as cli_app
from hubscore.core.artifacts import MODEL_FILE
from hubscore.engine.scorer import load_scorer
from hubscore.serving.api import create_app

with warnings.catch_warnings():
    # Starlette asks for the httpx2 fork; the dev group has httpx, which still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

GOLDEN = Path(__file__).parent / "golden" / "basic"
RUN = GOLDEN / "run"
FEATURES = load_scorer(RUN).manifest.feature_names
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(RUN, max_batch=3)) as test_client:
        yield test_client


def golden_companies() -> list[dict[str, Any]]:
    """Return the golden input rows as JSON objects, NaN/inf as null (both mean missing)."""
    rows = pl.read_parquet(GOLDEN / "input.parquet").to_dicts()
    return [
        {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
        for row in rows
    ]


def is_valid(company: dict[str, Any]) -> bool:
    """Return whether the API accepts a row: no negative count (trends may be negative)."""
    return all(
        not isinstance(v, int | float) or isinstance(v, bool) or v >= 0 or k.startswith("trend_")
        for k, v in company.items()
        if k != "id"
    )


def error_locs(response: httpx.Response) -> list[list[Any]]:
    return [e["loc"] for e in response.json()["detail"]]


def log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_root_and_health(client: TestClient) -> None:
    root = client.get("/").json()
    assert root == {
        "name": "hubscore",
        "version": root["version"],
        "model_version": "golden-basic-1",
        "docs": "/docs",
    }
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["model_version"] == "golden-basic-1" and health["uptime_s"] >= 0


def test_single_reports_imputed_features_and_unseen_employee_range(client: TestClient) -> None:
    response = client.post(
        "/predict/single", json={"id": 7, "EMPLOYEE_RANGE": "a few", "total_actions": 12.0}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "company_id",
        "prediction",
        "conversion_probability",
        "confidence",
        "features_imputed",
        "employee_range_unseen",
    }
    # Every feature but total_actions is filled; the unseen bucket is imputed too.
    assert body["company_id"] == 7 and body["features_imputed"] == len(FEATURES) - 1
    assert body["employee_range_unseen"] is True
    known = client.post("/predict/single", json={"id": 7, "EMPLOYEE_RANGE": "10,001 OR more"})
    assert known.json()["employee_range_unseen"] is False
    assert known.json()["features_imputed"] == len(FEATURES) - 1
    blank = client.post("/predict/single", json={"id": 7, "EMPLOYEE_RANGE": "  "}).json()
    assert blank["employee_range_unseen"] is False and blank["features_imputed"] == len(FEATURES)


def test_numbers_equal_hubscore_score_on_golden_rows(client: TestClient) -> None:
    companies = [c for c in golden_companies() if is_valid(c)]
    assert len(companies) >= 30  # most golden rows are valid API input
    expected = pl.read_parquet(GOLDEN / "expected_scores.parquet")  # `hubscore score` output
    scores = []
    for start in range(0, len(companies), 3):  # max_batch is 3 on this client
        response = client.post("/predict", json={"companies": companies[start : start + 3]})
        assert response.status_code == 200, response.text
        scores += response.json()["predictions"]
    got = pl.DataFrame(scores).rename({"company_id": "id"})
    assert got["id"].to_list() == [c["id"] for c in companies]  # request order
    joined = got.join(expected, on="id", suffix="_batch")
    assert joined.height == len(companies)
    api = joined["conversion_probability"].cast(pl.Float32).to_numpy()
    # float32 equality: the API prints the shortest repr of the same float32 number.
    np.testing.assert_array_equal(api, joined["conversion_probability_batch"].to_numpy())
    assert joined["prediction"].to_list() == joined["prediction_batch"].to_list()
    assert joined["confidence"].to_list() == joined["confidence_batch"].to_list()
    single = client.post("/predict/single", json=companies[0]).json()
    assert single["conversion_probability"] == scores[0]["conversion_probability"]


def test_golden_rows_with_negative_counts_are_refused(client: TestClient) -> None:
    bad = next(c for c in golden_companies() if not is_valid(c))
    negative = [k for k, v in bad.items() if isinstance(v, int | float) and v < 0]
    response = client.post("/predict/single", json=bad)
    assert response.status_code == 422
    assert sorted(loc[-1] for loc in error_locs(response)) == sorted(negative)


def test_batch_envelope_and_empty_batch(client: TestClient) -> None:
    body = client.post("/predict", json={"companies": [{"id": 2}, {"id": 1}]}).json()
    assert [p["company_id"] for p in body["predictions"]] == [2, 1]
    assert body["total_count"] == 2 and body["model_version"] == "golden-basic-1"
    assert body["timestamp"].endswith("+00:00")
    assert client.post("/predict", json={"companies": []}).json()["predictions"] == []


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        (b'{"id": 1, "total_actions": "many"}', ["body", "total_actions"], "float_type"),
        (b'{"id": 1, "days_active": 2.5}', ["body", "days_active"], "multiple_of"),
        (b'{"id": 1, "days_active": NaN}', ["body", "days_active"], "finite_number"),
        (b'{"id": "1"}', ["body", "id"], "int_type"),
        (b'{"id": 1, "total_users": -3}', ["body", "total_users"], "greater_than_equal"),
        (b'{"id": 1, "total_actions": NaN}', ["body", "total_actions"], "finite_number"),
        (b'{"id": 1, "total_actions": Infinity}', ["body", "total_actions"], "finite_number"),
        (b'{"id": 1, "total_actions": 1e999}', ["body", "total_actions"], "finite_number"),
        (b'{"id": 1, "total_action": 5}', ["body", "total_action"], "extra_forbidden"),
        (b'{"total_actions": 5}', ["body", "id"], "missing"),
        (b'{"id": 1,', ["body"], "json_invalid"),
    ],
)
def test_invalid_single_is_422_with_field_messages(
    client: TestClient, body: bytes, loc: list[str], kind: str
) -> None:
    response = client.post(
        "/predict/single", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["type"]) == (loc, kind) and error["msg"]


def test_invalid_batch_points_at_the_company(client: TestClient) -> None:
    companies = [{"id": 1}, {"id": 2, "ALEXA_RANK": -1}]
    response = client.post("/predict", json={"companies": companies})
    assert response.status_code == 422
    assert error_locs(response) == [["body", "companies", 1, "ALEXA_RANK"]]
    dupes = client.post("/predict", json={"companies": [{"id": 1}, {"id": 1}]})
    assert dupes.status_code == 422 and "share their id" in dupes.json()["detail"][0]["msg"]


def test_batch_over_max_is_413(client: TestClient) -> None:
    response = client.post("/predict", json={"companies": [{"id": i} for i in range(4)]})
    assert response.status_code == 413
    assert response.json()["detail"] == "a batch holds at most 3 companies, this one 4"


def test_oversized_body_is_413_before_parsing() -> None:
    with TestClient(create_app(RUN, max_body_bytes=1000)) as small:
        declared = small.post("/predict/single", content=b"x" * 1001)  # not even JSON
        assert declared.status_code == 413
        chunked = small.post("/predict/single", content=iter([b"x" * 600, b"x" * 600]))
        assert chunked.status_code == 413
        assert small.post("/predict/single", json={"id": 1}).status_code == 200


def test_bearer_token_guards_all_but_health() -> None:
    with TestClient(create_app(RUN, token=TOKEN)) as guarded:
        assert guarded.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = guarded.post("/predict/single", json={"id": 1}, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert guarded.get("/").status_code == 401
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert guarded.post("/predict/single", json={"id": 1}, headers=ok).status_code == 200


def test_unexpected_error_is_a_json_500_with_error_id(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app(RUN)
    assert isinstance(app, FastAPI)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "internal server error" and len(body["error_id"]) == 12
    assert "secret" not in response.text and "Traceback" not in response.text
    lines = log_lines(capsys.readouterr().err)
    error = next(line for line in lines if line["event"] == "error")
    assert error["error_id"] == body["error_id"] and "secret internals" in error["traceback"]


def test_access_log_is_one_json_line_per_request(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.post("/predict", json={"companies": [{"id": 1}, {"id": 2}]})
    client.get("/nowhere")
    lines = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert [(x["method"], x["path"], x["status"], x["companies"]) for x in lines] == [
        ("POST", "/predict", 200, 2),
        ("GET", "/nowhere", 404, None),
    ]
    assert all(x["duration_ms"] >= 0 for x in lines)


def test_openapi_lists_every_model_feature_with_examples(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    company = schema["components"]["schemas"]["CompanyFeatures"]
    assert list(company["properties"])[:7] == [
        "id",
        "ALEXA_RANK",
        "EMPLOYEE_RANGE",
        "INDUSTRY",
        "total_actions",
        "total_users",
        "actions_per_user",
    ]
    assert set(company["properties"]) == {"id", *FEATURES} and company["required"] == ["id"]
    assert all(prop["examples"] for prop in company["properties"].values())
    assert set(company["examples"][0]) == {"id", *FEATURES}
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictionRequest"}
    assert schema["components"]["schemas"]["PredictionRequest"]["examples"]
    responses = schema["paths"]["/predict/single"]["post"]["responses"]
    assert {"200", "401", "413", "422", "500"} <= set(responses)


@pytest.mark.parametrize("damage", ["missing", "tampered"])
def test_serve_refuses_a_bad_model_with_exit_5(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    if damage == "tampered":
        shutil.copytree(RUN, run)
        with (run / MODEL_FILE).open("ab") as handle:
            handle.write(b"\0")
    result = CliRunner().invoke(cli_app, ["serve", "--model", str(run), "--port", "1"])
    assert result.exit_code == 5
    assert result.stderr.startswith("error: ")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(base: str) -> None:
    """Wait until a server just started at `base` answers /health, or fail the test."""
    for _ in range(150):  # up to ~15 s for a cold start on a busy machine
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("the server never answered /health")


def test_real_server_answers_over_http_and_stops_cleanly_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HUBSCORE_API_TOKEN"}
    command = [sys.executable, "-m", "hubscore", "serve", "--model", str(RUN), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base)
        response = httpx.post(f"{base}/predict/single", json={"id": 9, "total_users": 2})
        assert response.status_code == 200 and response.json()["company_id"] == 9
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=15)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    requests = [line for line in log_lines(stderr) if line.get("path") == "/predict/single"]
    assert requests[0]["status"] == 200 and requests[0]["companies"] == 1


def test_serve_has_help() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0 and "HUBSCORE_API_TOKEN" in result.stdout
