"""The HTTP API as a new client meets it: docs that work offline, the seed's payloads, and the
same numbers as the Python API for the same partial rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_serve import free_port, wait_until_healthy

from hubscore.engine.scorer import Predictor
from hubscore.serving.api import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's httpx2 notice, as in test_serve.py
    from fastapi.testclient import TestClient

RUN = Path(__file__).parent / "golden" / "basic" / "run"
SEED = {"id": 1042, "EMPLOYEE_RANGE": "26 to 50", "INDUSTRY": "COMPUTER_SOFTWARE"}
WHOLE_FLOATS = {"ALEXA_RANK": 50000.0, "total_actions": 150.0, "total_users": 5.0}
WHOLE_FLOATS["days_active"] = 30.0
"""The seed design's example, as Python's json and pandas' to_json write it."""
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(RUN)) as test_client:
        yield test_client


def test_whole_json_floats_score_as_the_integers_they_are(client: TestClient) -> None:
    as_floats = client.post("/predict/single", json={**SEED, **WHOLE_FLOATS})
    integers = {name: int(value) for name, value in WHOLE_FLOATS.items()}
    as_ints = client.post("/predict/single", json={**SEED, **integers})
    assert as_floats.status_code == as_ints.status_code == 200, as_floats.text
    assert as_floats.json() == as_ints.json()


@pytest.mark.parametrize("feature", ["days_active", "ALEXA_RANK"])  # integers in this model
def test_a_fractional_value_for_an_integer_feature_is_a_422_that_says_so(
    client: TestClient, feature: str
) -> None:
    response = client.post("/predict/single", json={**SEED, **WHOLE_FLOATS, feature: 150.5})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", feature]
    assert "whole number" in error["msg"] and "integer" in error["msg"]


@pytest.mark.parametrize("bad", ["30", True, 2.0**63])
def test_strings_booleans_and_overflows_stay_refused(client: TestClient, bad: Any) -> None:
    response = client.post("/predict/single", json={**SEED, "days_active": 30, "ALEXA_RANK": bad})
    assert response.status_code == 422


def test_the_python_api_imputes_partial_rows_exactly_as_the_http_api(client: TestClient) -> None:
    rows = [
        {"id": 1, "actions_recent": 50},
        {"id": 2, **WHOLE_FLOATS},
        {"id": 3, "EMPLOYEE_RANGE": "2 to 5", "INDUSTRY": "real estate", "days_active": 14},
    ]
    predictor = Predictor.load(RUN)
    local = predictor.score(rows).sort("id")
    served = client.post("/predict", json={"companies": rows}).json()["predictions"]
    assert [p["company_id"] for p in served] == local.get_column("id").to_list()
    # float32 both: the JSON carries the shortest text that reads back as the same float32
    served_p = np.array([p["conversion_probability"] for p in served], dtype=np.float32)
    assert served_p.tolist() == local.get_column("conversion_probability").to_list()
    assert [p["prediction"] for p in served] == local.get_column("prediction").to_list()


class AssetLinks(HTMLParser):
    """Collect every URL a page loads: src and href attributes, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v]


def page_assets(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    if "SwaggerUIBundle(" in html:  # Swagger UI names its OpenAPI document in a script
        parser.urls.append(html.split("url: '", 1)[1].split("'", 1)[0])
    return parser.urls


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A real `hubscore serve` process on a loopback port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "HUBSCORE_API_TOKEN"}
    command = [sys.executable, "-m", "hubscore", "serve", "--model", str(RUN), "--port", str(port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_same_origin_assets_the_server_serves(server: str, page: str) -> None:
    response = httpx.get(server + page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assets = page_assets(response.text)
    assert len(assets) >= (4 if page == "/docs" else 3)  # js (+css), favicon, the OpenAPI doc
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} off-site"
        asset = httpx.get(server + url)
        assert asset.status_code == 200, url
        wanted = CONTENT_TYPES[Path(url).suffix]
        assert asset.headers["content-type"].startswith(wanted), (url, asset.headers)
        assert len(asset.content) > 1000, url
