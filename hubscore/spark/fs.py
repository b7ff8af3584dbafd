"""Files and folders for the Spark engine through Hadoop's FileSystem API, URIs included.

A location is a string: a local path (read as a local file, whatever the cluster's default
file system) or a URI such as `s3a://bucket/x`, `hdfs://nn/x`, `abfss://...`, `gs://...` or
`file:///x`. Spark reads and writes the data; the driver's few small files (quality.json,
a folder's metadata sidecar, Parquet footers) and the stage-then-rename of every output go
through the same FileSystem the executors use, so no Python client per store is needed.
A rename is atomic on HDFS and local disks; object stores copy, so readers should wait for
the command to finish there.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark.sql import SparkSession

from hubscore.core.atomic import TEMP_MARKER
from hubscore.core.locations import is_uri
from hubscore.spark.session import SparkEngineError


def join(location: str, *names: str) -> str:
    """Append names to a location with `/` (a local path joins as `pathlib` would)."""
    if not is_uri(location):
        return os.path.join(location, *names)
    return "/".join([location.rstrip("/"), *names])


def split(location: str) -> tuple[str, str]:
    """Return a location's parent and last name."""
    head, _, name = location.rstrip("/").rpartition("/")
    return (head or ("/" if location.startswith("/") else ".")), name


def suffix(location: str) -> str:
    """Return a location's extension, e.g. `.parquet` (a URI's query never counts)."""
    return PurePosixPath(urlparse(location).path if is_uri(location) else location).suffix


def file_key(uri: str) -> str:
    """Return one spelling of a file's location: Spark's `file:///a%20b` is `file:/a b`."""
    parsed = urlparse(uri if is_uri(uri) else "file://" + os.path.abspath(uri))
    return f"{parsed.scheme}://{parsed.netloc}{unquote(parsed.path)}"


class Store:
    """Hadoop FileSystem calls on the driver, for local paths and URIs alike."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark._jvm
        self._conf: Any = spark._jsc.hadoopConfiguration()

    def uri(self, location: str) -> str:
        """Return the location as Spark and Hadoop read it (a local path as `file://`)."""
        return location if is_uri(location) else "file://" + os.path.abspath(location)

    def _path(self, location: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(self.uri(location))
        fs = path.getFileSystem(self._conf)
        # The local file system's checksum layer would leave a `.crc` beside each small file.
        return path, fs.getRawFileSystem() if fs.getScheme() == "file" else fs

    def exists(self, location: str) -> bool:
        """Tell whether a file or folder is there."""
        path, fs = self._path(location)
        return bool(fs.exists(path))

    def is_dir(self, location: str) -> bool:
        """Tell whether the location is a folder (False when it does not exist)."""
        path, fs = self._path(location)
        return bool(fs.exists(path) and fs.getFileStatus(path).isDirectory())

    def files(self, folder: str) -> list[str]:
        """Return the path inside `folder` of every file at any depth, in name order."""
        path, fs = self._path(folder)
        root = file_key(fs.makeQualified(path).toString()).rstrip("/") + "/"
        found, listing = [], fs.listFiles(path, True)
        while listing.hasNext():
            found.append(file_key(listing.next().getPath().toString()).removeprefix(root))
        return sorted(found)

    def children(self, folder: str) -> list[str]:
        """Return the names directly inside a folder (empty when it does not exist)."""
        path, fs = self._path(folder)
        if not fs.exists(path):
            return []
        return [status.getPath().getName() for status in fs.listStatus(path)]

    def read_text(self, location: str) -> str:
        """Return a small UTF-8 file's text."""
        path, fs = self._path(location)
        sink = self._jvm.java.io.ByteArrayOutputStream()
        # copyBytes closes the stream (its last argument) when done or failed.
        self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(fs.open(path), sink, 65536, True)
        return bytes(sink.toByteArray()).decode("utf-8")

    def write_text(self, location: str, text: str) -> None:
        """Write a small UTF-8 file (replacing one that is there)."""
        path, fs = self._path(location)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def parquet_metadata(self, location: str) -> dict[str, str]:
        """Return a Parquet file's footer key-value metadata, without Arrow's own keys."""
        path, _ = self._path(location)
        hadoop = self._jvm.org.apache.parquet.hadoop
        reader = hadoop.ParquetFileReader.open(
            hadoop.util.HadoopInputFile.fromPath(path, self._conf)
        )
        try:
            raw = reader.getFooter().getFileMetaData().getKeyValueMetaData()
            return {str(k): str(v) for k, v in dict(raw).items() if not str(k).startswith("ARROW:")}
        finally:
            reader.close()

    def mkdirs(self, location: str) -> None:
        """Create a folder and its parents (nothing when it is there)."""
        path, fs = self._path(location)
        fs.mkdirs(path)

    def rename(self, source: str, target: str) -> None:
        """Rename `source` to `target`, which must not exist (Hadoop would move into it)."""
        src, fs = self._path(source)
        dst, _ = self._path(target)
        if not fs.rename(src, dst):
            raise SparkEngineError(
                f"could not rename {source} to {target}",
                hint="check that the output's folder is writable; the previous output is kept",
            )

    def delete(self, location: str) -> None:
        """Delete a file or a folder with everything in it (nothing when it is not there)."""
        path, fs = self._path(location)
        fs.delete(path, True)


@contextlib.contextmanager
def staged(store: Store, target: str) -> Iterator[str]:
    """Yield a temp location beside `target`; on success it replaces `target` (file or folder).

    Temps carry the core's marker, so a killed run's litter is removed by the next run.
    """
    parent, name = split(target)
    store.mkdirs(parent)
    prefix = f".{name}{TEMP_MARKER}"
    for stale in store.children(parent):
        if prefix in stale:  # writers may add their own prefix to our temp's name
            store.delete(join(parent, stale))
    temp = join(parent, f"{prefix}{uuid.uuid4().hex[:12]}")
    try:
        yield temp
        old = temp + "-old"
        if store.exists(target):
            store.rename(target, old)
        try:
            store.rename(temp, target)
        except SparkEngineError:
            if store.exists(old):
                store.rename(old, target)  # the previous output back in place
            raise
        store.delete(old)
    finally:
        store.delete(temp)
