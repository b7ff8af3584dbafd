"""The streaming pass of `score_file`: read, prepare, model and collect as overlapping stages.

    reader thread ──▶ prepare workers ──▶ model thread ──▶ collector (the calling thread)
    decode batches    conform, encode,     onnxruntime      keys + probabilities, drift
    (Polars/Arrow)    count drift          (GIL released)   counts, the top rows so far

Every stage works on whole batches in the NumPy/Polars/onnxruntime kernels, which release the
GIL, so on a 2-core host the model runs batch n while batch n+1 is decoded and encoded. Queues
are bounded (`LOOKAHEAD` batches in each), so memory stays flat whatever the input's size.
Results are collected in input order, so batches, probabilities, drift counts and errors are
exactly those of a sequential pass: the first bad batch's error is the one raised.

Only what ranking needs is kept: key columns and float32 probabilities (12-16 bytes a row), plus
the conformed rows that could still be among the `explain` best of their cutoff (`TopRows`),
so reasons need no second read of the input.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from hubscore.engine.conform import key_columns
from hubscore.engine.drift import DriftCounter
from hubscore.engine.scorer import CUTOFF, ID, PROBABILITY, RANK, Scorer, rank_scores, to_frame

Batch: TypeAlias = pa.RecordBatch | pl.DataFrame
Progress = Callable[[int, int | None], None]
"""Called after each batch with (rows done, total rows or None when unknown)."""
LOOKAHEAD = 2
"""Batches each stage may run ahead of the next: enough to keep the model busy, and bounded."""
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Streamed:
    """What one pass over the input leaves for ranking, the summary and the reasons."""

    keys: pl.DataFrame
    """`id` (and `cutoff`) of every row, in input order."""
    probabilities: np.ndarray
    drift: DriftCounter
    top: TopRows | None


@dataclass
class Prepared:
    """One batch conformed and encoded: what the model and the collector need of it."""

    keys: pl.DataFrame
    matrix: np.ndarray
    counts: dict[str, np.ndarray]
    """This batch's drift counts (`DriftCounter.add` them)."""
    frame: pl.DataFrame | None
    """The conformed rows, kept only when reasons are wanted."""


def prepare(scorer: Scorer, drift: DriftCounter, batch: Batch, *, keep: bool) -> Prepared:
    """Conform and encode one batch and count its drift (thread-safe: reads the counter's
    profile only). Keys are checked once over every row, later, not per batch."""
    frame = scorer.conform(batch if isinstance(batch, pl.DataFrame) else to_frame(batch))
    keys = pl.DataFrame([frame.get_column(key) for key in key_columns(frame)])
    numbers: dict[str, np.ndarray] = {}
    # The encoder's float64 view of the numbers feeds the drift counts: cast once.
    matrix = scorer.encode(
        frame, observe=lambda names, values: drift.count_values(names, values, numbers)
    )
    counts = drift.count(frame, counted=numbers)
    return Prepared(keys, matrix, counts, frame if keep else None)


def stream_scores(
    batches: Iterable[Batch],
    scorer: Scorer,
    *,
    total_rows: int | None = None,
    explain: int = 0,
    on_progress: Progress | None = None,
    workers: int | None = None,
) -> Streamed:
    """Score every batch through the overlapping stages; return what ranking needs.

    Args:
        explain: keep the conformed rows of the best `explain` per cutoff, for reasons.
        workers: prepare threads; default: one per CPU this process may use, at most 2.
    """
    drift = DriftCounter(scorer.manifest.feature_distributions)
    top = TopRows(explain) if explain else None
    collected_keys: list[pl.DataFrame] = []
    collected_probs: list[np.ndarray] = []
    done = 0

    def collect(prepared: Prepared, probs: np.ndarray) -> None:
        nonlocal done
        collected_keys.append(prepared.keys)
        collected_probs.append(probs)
        drift.add(prepared.counts, prepared.keys.height)
        if top is not None and prepared.frame is not None:
            top.offer(prepared.frame, probs)
        done += prepared.keys.height
        if on_progress and done:
            on_progress(done, total_rows)

    preparers = workers or _cpus()
    with (
        _prefetched(batches) as read,
        thread_pool(preparers, "prepare") as preparing,
        thread_pool(1, "model") as modelling,
    ):
        keep = top is not None
        prepared = _ordered(
            read,
            preparing,
            lambda batch: prepare(scorer, drift, batch, keep=keep),
            ahead=LOOKAHEAD + preparers,
        )
        modelled = _ordered(prepared, modelling, lambda p: scorer.run_model(p[1].matrix), ahead=2)
        with contextlib.closing(prepared), contextlib.closing(modelled):
            for (_, batch), probs in modelled:
                collect(batch, probs)
    keys = pl.concat(collected_keys) if collected_keys else pl.DataFrame(schema={ID: pl.Int64})
    probs = np.concatenate(collected_probs) if collected_probs else np.empty(0, np.float32)
    return Streamed(keys, probs, drift, top)


def _ordered(
    items: Iterable[T], pool: ThreadPoolExecutor, work: Callable[[T], R], *, ahead: int
) -> Generator[tuple[T, R], None, None]:
    """Yield (item, work(item)) in input order, with at most `ahead` items in flight."""
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= ahead:
                head, future = pending.popleft()
                yield head, future.result()
        while pending:
            head, future = pending.popleft()
            yield head, future.result()
    finally:
        for _, left in pending:  # an error or an interrupt: drop what has not started
            left.cancel()


@contextlib.contextmanager
def thread_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that, on the way out, cancels queued work and waits for running work."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _prefetched:
    """Iterate a batch source in a reader thread, at most `LOOKAHEAD` batches ahead.

    The reader's own errors (a truncated file) are raised in the consuming thread, in order.
    On exit (finished, failed or interrupted) the reader is told to stop and joined.
    """

    _DONE = object()

    def __init__(self, batches: Iterable[Batch]) -> None:
        self.batches = batches
        self.queue: queue.Queue[object] = queue.Queue(maxsize=LOOKAHEAD)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, name="reader", daemon=True)

    def __enter__(self) -> Iterator[Batch]:
        self.thread.start()
        return self._consume()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        while self.thread.is_alive():  # unblock a reader waiting for room
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.05)
        self.thread.join()

    def _read(self) -> None:
        try:
            for batch in self.batches:
                if not self._put(batch):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put(_Failed(exc))

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _consume(self) -> Iterator[Batch]:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc,unused-ignore]


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _cpus() -> int:
    return max(1, min(2, len(os.sched_getaffinity(0))))


@dataclass
class TopRows:
    """The conformed rows that are, so far, among the `n` most likely of their cutoff.

    Ranks break ties by the smaller id (`rank_scores`), so keeping the `n` best by (probability
    descending, id) of every batch seen so far leaves exactly the rows ranked 1..n at the end.
    A batch row below the n-th kept probability of its cutoff can never rank in the top n and
    is dropped before any sort: after the first batches almost every row is.
    """

    n: int
    rows: pl.DataFrame | None = None
    floors: pl.DataFrame | None = field(default=None, repr=False)

    def offer(self, frame: pl.DataFrame, probs: np.ndarray) -> None:
        """Consider one conformed batch and its probabilities."""
        scored = frame.hstack([pl.Series(PROBABILITY, probs, dtype=pl.Float32)])
        scored = self._above_floor(scored)
        if scored.height == 0:
            return
        pool = scored if self.rows is None else pl.concat([self.rows, scored])
        ranked = rank_scores(pool)
        self.rows = ranked.filter(pl.col(RANK) <= self.n).drop(RANK)
        self.floors = self._floors(self.rows)

    def features(self) -> pl.DataFrame | None:
        """Return the kept rows without their probability: what `Scorer.explain` reads."""
        return None if self.rows is None else self.rows.drop(PROBABILITY)

    def _above_floor(self, scored: pl.DataFrame) -> pl.DataFrame:
        if self.floors is None or self.floors.height == 0:
            return scored
        if CUTOFF not in scored.columns:
            return scored.filter(pl.col(PROBABILITY) >= self.floors.item(0, "_floor"))
        # A cutoff not yet full (or not yet seen) has no floor: all of its rows may rank.
        joined = scored.join(self.floors, on=CUTOFF, how="left", maintain_order="left")
        kept = pl.col("_floor").is_null() | (pl.col(PROBABILITY) >= pl.col("_floor"))
        return joined.filter(kept).drop("_floor")

    def _floors(self, rows: pl.DataFrame) -> pl.DataFrame:
        """The lowest kept probability of every cutoff that already holds `n` rows."""
        if CUTOFF not in rows.columns:
            full = rows.height >= self.n
            return pl.DataFrame({"_floor": [rows.get_column(PROBABILITY).min()] if full else []})
        per_cutoff = rows.group_by(CUTOFF).agg(
            pl.col(PROBABILITY).min().alias("_floor"), pl.len().alias("_rows")
        )
        return per_cutoff.filter(pl.col("_rows") >= self.n).drop("_rows")
