"""Start (or join) a Spark session: loopback for local masters, quiet logs, clear errors.

Start-up fails fast and by name on what a cron host gets wrong: the `spark` extra missing, no
Java 17+, a standalone master that does not answer. A failed job is mapped back to the
hubscore error a worker raised, or to `SparkEngineError` with Spark's first line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from hubscore.core.errors import ConfigError, HubscoreError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_EXIT_CODE = 8
MIN_JAVA = 17
LOG_LEVELS = ("ERROR", "WARN", "INFO", "DEBUG")
DRIVER_MEMORY = "2g"
# Spark's own defaults print a UI banner, a progress bar and local-time timestamps; none of
# them belongs in cron mail or in output files.
BASE_CONF = {
    "spark.app.name": "hubscore",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
LOOPBACK_CONF = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.memory": DRIVER_MEMORY,
}
ERROR_MARKER = "hubscore-error"
"""Prefix of a worker's HubscoreError re-raised as text, so the driver can restore it."""
_MARKED = re.compile(
    rf"{ERROR_MARKER}\[(?P<code>\d+)\] (?P<message>.*?)(?:\n|$)(?P<hint>hint: .*)?"
)


class SparkEngineError(HubscoreError):
    """The Spark engine could not run: no Java, an unreachable master, or a failed job."""

    exit_code = SPARK_EXIT_CODE


class WorkerError(HubscoreError):
    """A hubscore error raised inside a Spark task, restored on the driver with its exit code."""

    def __init__(self, message: str, *, hint: str | None, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(message, hint=hint)


@contextlib.contextmanager
def spark_session(master: str = "local[2]", *, log_level: str = "ERROR") -> Iterator[SparkSession]:
    """Yield a SparkSession: the active one if any (left running), else a new one (stopped)."""
    require_pyspark()
    check_java()
    check_master(master)
    from pyspark.sql import SparkSession

    quiet_pyspark_warnings()
    active = SparkSession.getActiveSession()
    if active is not None:
        active.sparkContext.setLogLevel(log_level)
        yield active
        return
    with _jvm_log(log_level) as log:
        session = _start(master, log_level, log)
        try:
            yield session
        finally:
            session.stop()


def require_pyspark() -> None:
    """Refuse --engine spark without the extra, naming how to install it."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--engine spark needs pyspark, which is not installed",
            hint="install the spark extra: pip install 'hubscore[spark]' (uv sync --extra spark)",
        ) from None


def quiet_pyspark_warnings() -> None:
    """Hide pyspark's pandas-version FutureWarning: applyInArrow only imports pandas."""
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )


def check_java() -> str:
    """Return the java binary Spark will use, refusing a missing one or one older than 17."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    hint = f"install Java {MIN_JAVA} or newer and set JAVA_HOME (or put java on PATH)"
    if not java or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        raise SparkEngineError(f"Spark needs Java, but {where}", hint=hint)
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr)
    major = int(found[1]) if found else 0
    major = int(found[2]) if found and major == 1 and found[2] else major  # "1.8" is Java 8
    if major < MIN_JAVA:
        raise SparkEngineError(
            f"Spark 4 needs Java {MIN_JAVA}+, {java} is Java {major or 'unknown'}", hint=hint
        )
    return java


def check_master(master: str, *, timeout_s: float = 5.0) -> None:
    """Refuse a standalone master (spark://host:port) that does not accept a connection."""
    if not master.startswith("spark://"):
        return
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError):
            continue
    raise SparkEngineError(
        f"cannot reach the Spark master {master} (no answer within {timeout_s:g} s)",
        hint="check --master (spark://HOST:PORT, or local[N] to run on this machine)",
    )


@contextlib.contextmanager
def _jvm_log(log_level: str) -> Iterator[IO[bytes] | None]:
    """Collect the JVM's own output in a temp file unless the user asked for Spark's logs."""
    if log_level != "ERROR":
        yield None
        return
    with tempfile.TemporaryFile(prefix="hubscore-spark-") as handle:
        yield handle


def _start(master: str, log_level: str, log: IO[bytes] | None) -> SparkSession:
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    # Workers must run this interpreter: it is the one with hubscore and its dependencies.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = (
        SparkConf()
        .setMaster(master)
        .setAll(list({**BASE_CONF, **(LOOPBACK_CONF if local else {})}.items()))
    )
    streams = {"stdout": log, "stderr": log} if log else None
    try:
        gateway = launch_gateway(conf, popen_kwargs=streams)  # type: ignore[no-untyped-call]
        context = SparkContext(conf=conf, gateway=gateway)
    except Exception as exc:  # pyspark raises untyped Py4J and runtime errors at start-up
        raise SparkEngineError(
            f"Spark did not start on {master}: {_first_line(exc)}{_log_tail(log)}",
            hint="run with --log-level INFO to see Spark's own messages",
        ) from None
    context.setLogLevel(log_level)
    return SparkSession(context)


def _local_cores(master: str) -> int:
    """Return N of local[N] (local[*] and local: this machine's cores)."""
    found = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if found and found[1] and found[1] != "*":
        return int(found[1])
    return os.cpu_count() or 1


def _log_tail(log: IO[bytes] | None, *, lines: int = 3) -> str:
    if log is None:
        return ""
    log.seek(0)
    tail = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()][-lines:]
    return "; JVM said: " + " | ".join(tail) if tail else ""


@contextlib.contextmanager
def job_errors(action: str) -> Iterator[None]:
    """Map a failed Spark job to the hubscore error a worker raised, or to SparkEngineError."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:
        text = str(exc)
        marked = _MARKED.search(text)
        if marked:
            hint = marked["hint"].removeprefix("hint: ") if marked["hint"] else None
            raise WorkerError(marked["message"], hint=hint, exit_code=int(marked["code"])) from None
        raise SparkEngineError(
            f"the Spark job failed while {action}: {_cause(text)}",
            hint="run with --log-level WARN to see the executors' messages; nothing was written",
        ) from None


@contextlib.contextmanager
def marked_errors() -> Iterator[None]:
    """Inside a task: re-raise a HubscoreError as text the driver's `job_errors` restores."""
    try:
        yield
    except HubscoreError as exc:
        hint = f"\nhint: {exc.hint}" if exc.hint else ""
        raise RuntimeError(f"{ERROR_MARKER}[{exc.exit_code}] {exc.message}{hint}") from None


def _cause(text: str) -> str:
    """Return the most telling line of a failed job: a worker's exception, else the first."""
    raised: list[str] = re.findall(r"^\s*(\w+(?:Error|Exception): .+)$", text, flags=re.MULTILINE)
    python = [line for line in raised if not line.startswith(("py4j", "org.", "java."))]
    lines = python or raised or [text.strip().splitlines()[0] if text.strip() else "unknown"]
    return lines[-1].strip()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
