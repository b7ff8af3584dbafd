"""Benchmark `hubscore serve` from a second process on loopback, against the bare core.

    uv run python bench/bench_serve.py                  # golden model, 90 s at most
    uv run python bench/bench_serve.py --model models/latest --single 5000
    uv run python bench/bench_serve.py --before /tmp/main   # also an older checkout's server

Starts `hubscore serve` on a free 127.0.0.1 port, then, from this process over keep-alive
HTTP, one request at a time: `--single` calls to /predict/single (throughput, p50/p99
latency), `--batches` calls to /predict with `--batch-size` companies as JSON, and as many
with the same companies as an Arrow IPC stream (companies/s; the answer in the request's
format). The baseline is `Scorer.score_batch` in this process on the same companies already in
an Arrow batch: what the API costs on top of the core is the ratio. Every phase stops at its
request count or at the shared `--time-limit`, whichever comes first; the server is stopped
with SIGTERM. `--before DIR` then starts a server from the hubscore of DIR (PYTHONPATH) and
loads it the same way (JSON only, if it predates Arrow bodies). Each target is printed as
PASS or MISS; figures go to stdout and bench/out/bench_serve.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
from targets import Target, report

from hubscore.engine.scorer import load_scorer, now

ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_HEADERS = {"content-type": ARROW_STREAM}

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden" / "basic"
OUT = Path(__file__).parent / "out"
HOST = "127.0.0.1"  # loopback only: this never loads anything but this machine
WARM_UP = 20  # /predict/single calls before the measured ones


TARGETS = {
    "single_p99_ms": Target("/predict/single p99 latency, ms", "<", 20),
    "json_vs_core": Target("/predict JSON, 1,000 companies / the core in process", ">=", 0.5),
    "arrow_vs_core": Target("/predict Arrow, 1,000 companies / the core in process", ">=", 0.8),
}


def main() -> None:
    args = parse_args()
    model = args.model or next(
        p for p in (ROOT / "models" / "latest", GOLDEN / "run") if (p / "manifest.json").is_file()
    )
    companies = sample_companies(model, args.batch_size)
    OUT.mkdir(exist_ok=True)
    results = serve_and_load(model, companies, args, code=None)
    results |= core_baseline(model, companies, args)
    results["model"] = str(model)
    before = serve_and_load(model, companies, args, code=args.before) if args.before else None
    if before:
        results["before"] = before
    report_figures(results)
    # The core is measured once, in this process: both servers are compared with it.
    core = {k: v for k, v in results.items() if k.startswith("core_")}
    now, was = verdicts(results), verdicts({**before, **core}) if before else None
    results["targets"] = report(TARGETS, now, was)
    (OUT / "bench_serve.json").write_text(json.dumps(results, indent=2) + "\n")


def serve_and_load(
    model: Path, companies: list[dict[str, Any]], args: argparse.Namespace, code: Path | None
) -> dict[str, Any]:
    """Start a server (from the checkout `code`, else this one), load it, stop it."""
    deadline = time.monotonic() + args.time_limit
    port = free_port()
    log = OUT / ("bench_serve_server.log" if code is None else "bench_serve_before.log")
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    with log.open("w") as server_log:
        # -P: the checkout's hubscore, not the working directory's (`-m` puts it first)
        python = [sys.executable, "-P"] if code else [sys.executable]
        command = [*python, "-m", "hubscore", "serve", "--model", str(model)]
        server = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port)], stderr=server_log, env=env
        )
        try:
            dtypes = {"id": pl.Int64(), **load_scorer(model).feature_dtypes}
            results = run_load(f"http://{HOST}:{port}", companies, dtypes, args, deadline)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    results |= server_side(log)
    results["server_exit_code"] = server.returncode
    return results


def verdicts(r: dict[str, Any]) -> dict[str, float]:
    """Return each target's measured value."""
    values = {
        "single_p99_ms": r["single_p99_ms"],
        "json_vs_core": r["predict_companies_per_s"] / r["core_companies_per_s"],
    }
    if "predict_arrow_companies_per_s" in r:
        values["arrow_vs_core"] = r["predict_arrow_companies_per_s"] / r["core_companies_per_s"]
    return values


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder [models/latest, else golden]")
    parser.add_argument("--single", type=int, default=1000, help="/predict/single calls")
    parser.add_argument("--batches", type=int, default=300, help="/predict calls")
    parser.add_argument("--batch-size", type=int, default=1000, help="companies per /predict")
    parser.add_argument("--time-limit", type=float, default=90.0, help="seconds per server")
    parser.add_argument("--before", type=Path, help="a checkout of an earlier hubscore to time too")
    return parser.parse_args()


def sample_companies(model: Path, n: int) -> list[dict[str, Any]]:
    """Return `n` golden-like companies with fresh ids, typed as `model` types its features."""
    dtypes = {"id": pl.Int64(), **load_scorer(model).feature_dtypes}
    golden = pl.read_parquet(GOLDEN / "input.parquet")
    # A real model may type a feature Int64 where the golden input has Float64: the API
    # refuses 1200.0 for an integer (strict validation), so cast as the model reads them.
    typed = golden.select(
        pl.col(name).cast(dtype, strict=False) for name, dtype in dtypes.items() if name in golden
    )
    valid = [
        {k: clean(k, v) for k, v in row.items()}
        for row in typed.to_dicts()
        if all(not negative(k, v) for k, v in row.items())
    ]
    return [valid[i % len(valid)] | {"id": i} for i in range(n)]


def negative(name: str, value: Any) -> bool:
    """Return whether the API refuses a value as a negative count."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and name not in ("id",) and not name.startswith("trend_") and value < 0


def clean(name: str, value: Any) -> Any:
    """Return a value as JSON can carry it: NaN/inf mean missing, as in the encoder."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def run_load(
    base: str,
    companies: list[dict[str, Any]],
    dtypes: dict[str, pl.DataType],
    args: argparse.Namespace,
    deadline: float,
) -> dict[str, Any]:
    """Call the server one request at a time; return throughput and latency figures."""
    with httpx.Client(base_url=base, timeout=30) as client:
        wait_for_health(client, deadline)
        singles = [json.dumps(c).encode() for c in companies[:100]]
        batch = json.dumps({"companies": companies}).encode()
        arrow = arrow_stream(companies, dtypes)
        headers = {"content-type": "application/json"}
        for body in singles[:WARM_UP]:  # warm the connection and the server's code paths
            client.post("/predict/single", content=body, headers=headers).raise_for_status()

        def single(i: int) -> None:
            post = client.post("/predict/single", content=singles[i % 100], headers=headers)
            post.raise_for_status()

        def many(i: int) -> None:
            client.post("/predict", content=batch, headers=headers).raise_for_status()

        def many_arrow(i: int) -> None:
            response = client.post("/predict", content=arrow, headers=ARROW_HEADERS)
            response.raise_for_status()
            assert response.headers["content-type"] == ARROW_STREAM

        # Each phase gets at most a share of what is left, so a slow first phase cannot
        # starve the others.
        single_times = timed(single, args.single, share_of(deadline, 3))
        batch_times = timed(many, args.batches, share_of(deadline, 2))
        arrow_times: list[float] = []
        if accepts_arrow(client, arrow):
            arrow_times = timed(many_arrow, args.batches, deadline)
    figures = {
        "single_requests": len(single_times),
        "single_per_s": len(single_times) / sum(single_times),
        "single_p50_ms": percentile(single_times, 50) * 1000,
        "single_p99_ms": percentile(single_times, 99) * 1000,
        "predict_requests": len(batch_times),
        "predict_batch_size": len(companies),
        "predict_p50_ms": percentile(batch_times, 50) * 1000,
        "predict_companies_per_s": len(companies) * len(batch_times) / sum(batch_times),
        "batch_body_bytes": len(batch),
    }
    if arrow_times:
        figures["predict_arrow_p50_ms"] = percentile(arrow_times, 50) * 1000
        figures["predict_arrow_companies_per_s"] = (
            len(companies) * len(arrow_times) / sum(arrow_times)
        )
        figures["arrow_body_bytes"] = len(arrow)
    return figures


def arrow_stream(companies: list[dict[str, Any]], dtypes: dict[str, pl.DataType]) -> bytes:
    """Return the companies as an Arrow IPC stream, one row each, typed as the model types."""
    frame = pl.DataFrame(
        [pl.Series(n, [c.get(n) for c in companies], dtype=t) for n, t in dtypes.items()]
    )
    table = frame.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def accepts_arrow(client: httpx.Client, arrow: bytes) -> bool:
    """Return whether the server takes Arrow bodies (an older checkout does not)."""
    response = client.post("/predict", content=arrow, headers=ARROW_HEADERS)
    return response.status_code == 200 and response.headers["content-type"] == ARROW_STREAM


def wait_for_health(client: httpx.Client, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    sys.exit("the server did not answer /health before the time limit")


def share_of(deadline: float, parts: int) -> float:
    """Return the time a `1/parts` share of what is left before `deadline` ends."""
    return time.monotonic() + (deadline - time.monotonic()) / parts


def timed(call: Callable[[int], None], count: int, deadline: float) -> list[float]:
    """Run `call` up to `count` times, stopping at the deadline; return each call's seconds."""
    times: list[float] = []
    for i in range(count):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    if not times:
        sys.exit(f"the time limit passed before {call.__name__} could start; raise --time-limit")
    return times


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def core_baseline(
    model: Path, companies: list[dict[str, Any]], args: argparse.Namespace
) -> dict[str, Any]:
    """Score the same companies with `Scorer.score_batch` in process (no HTTP, no JSON).

    Bounded by the request counts alone: each call takes milliseconds.
    """
    scorer = load_scorer(model)
    dtypes = {"id": pl.Int64(), **scorer.feature_dtypes}
    frame = pl.DataFrame(
        [pl.Series(n, [c.get(n) for c in companies], dtype=t) for n, t in dtypes.items()]
    )
    batch = frame.to_arrow().combine_chunks().to_batches()[0]
    one = batch.slice(0, 1)
    scorer.score_batch(batch, scored_at=now())  # warm up
    batch_times = timed(
        lambda i: scorer.score_batch(batch, scored_at=now()), args.batches, math.inf
    )
    one_times = timed(lambda i: scorer.score_batch(one, scored_at=now()), args.single, math.inf)
    # The core's own entry for records, `Predictor.score(list of dicts)`: what a Python caller
    # holding the same JSON-like rows would run instead of the API.
    records = timed(lambda i: scorer.score(companies), args.batches, math.inf)
    return {
        "core_records_companies_per_s": len(companies) * len(records) / sum(records),
        "core_companies_per_s": len(companies) * len(batch_times) / sum(batch_times),
        "core_single_p50_ms": percentile(one_times, 50) * 1000,
    }


def server_side(log: Path) -> dict[str, Any]:
    """Return /predict/single latency as the server measured it (its JSON access log):
    what the API costs without this client's own time."""
    logged = [
        entry["duration_ms"] / 1000
        for line in log.read_text().splitlines()
        if line.startswith("{")
        and (entry := json.loads(line)).get("path") == "/predict/single"
        and entry.get("status") == 200
    ]
    durations = logged[WARM_UP:]
    return {
        "server_single_p50_ms": percentile(durations, 50) * 1000,
        "server_single_p99_ms": percentile(durations, 99) * 1000,
    }


def report_figures(r: dict[str, Any]) -> None:
    print(f"model {r['model']}; server exit code {r['server_exit_code']}")
    print(
        f"/predict/single  {r['single_requests']} calls: {r['single_per_s']:.0f} req/s, "
        f"p50 {r['single_p50_ms']:.2f} ms, p99 {r['single_p99_ms']:.2f} ms "
        f"(core in process, one row: p50 {r['core_single_p50_ms']:.2f} ms)"
    )
    print(
        f"  server-side (access log): p50 {r['server_single_p50_ms']:.2f} ms, "
        f"p99 {r['server_single_p99_ms']:.2f} ms"
    )
    print(
        f"/predict x{r['predict_batch_size']}  {r['predict_requests']} calls: "
        f"{r['predict_companies_per_s']:,.0f} companies/s, p50 {r['predict_p50_ms']:.1f} ms; "
        f"core in process {r['core_companies_per_s']:,.0f} companies/s; "
        f"ratio {r['predict_companies_per_s'] / r['core_companies_per_s']:.2f}x"
    )
    if "predict_arrow_companies_per_s" in r:
        print(
            f"/predict x{r['predict_batch_size']} as Arrow: "
            f"{r['predict_arrow_companies_per_s']:,.0f} companies/s, "
            f"p50 {r['predict_arrow_p50_ms']:.1f} ms; ratio "
            f"{r['predict_arrow_companies_per_s'] / r['core_companies_per_s']:.2f}x"
        )
    print(
        f"  vs Predictor.score(list of dicts) in process "
        f"{r['core_records_companies_per_s']:,.0f} companies/s: "
        f"ratio {r['predict_companies_per_s'] / r['core_records_companies_per_s']:.2f}x"
    )
    if "before" in r:
        b = r["before"]
        print(
            f"before: /predict JSON {b['predict_companies_per_s']:,.0f} companies/s "
            f"({b['predict_companies_per_s'] / r['core_companies_per_s']:.2f}x the core), "
            f"/predict/single p99 {b['single_p99_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
