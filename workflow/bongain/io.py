"""Parquet in and out: schema-checked atomic writes and reads that name the bad file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from bongain.schemas import ALL, TableSchema


class ArtifactError(RuntimeError):
    """A Parquet artifact is missing, unreadable or does not match its schema."""


def _schema(name_or_schema: str | TableSchema) -> TableSchema:
    if isinstance(name_or_schema, TableSchema):
        return name_or_schema
    try:
        return ALL[name_or_schema]
    except KeyError:
        raise KeyError(f"unknown table schema {name_or_schema!r}; known: {sorted(ALL)}") from None


def conform(df: pl.DataFrame, schema: str | TableSchema) -> pl.DataFrame:
    """Select the schema's columns in order and cast them; raise naming any missing column."""
    s = _schema(schema)
    missing = [c for c in s.columns if c not in df.columns]
    if missing:
        raise ArtifactError(f"{s.name}: missing column(s) {missing}; have {df.columns}")
    extra = [c for c in df.columns if c not in s.columns]
    if extra:
        raise ArtifactError(f"{s.name}: column(s) {extra} are not in the documented schema")
    return df.select([pl.col(c).cast(dtype, strict=True) for c, dtype in s.polars_schema.items()])


def _replace_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in the target folder, fsync it, rename it over ``path``.

    A reader (or Snakemake after a crash) never sees a half-written file under the final name.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically (see :func:`_replace_atomically`)."""
    return _replace_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_parquet_atomic(df: pl.DataFrame, path: str | os.PathLike, schema: str | TableSchema) -> Path:
    """Check ``df`` against ``schema`` and write it to ``path`` atomically.

    The frame goes to a temporary file in the same folder, is fsynced, then renamed over ``path``.
    Statistics and compression are fixed so the same frame gives the same bytes.
    """
    df = conform(df, schema)
    return _replace_atomically(
        path, lambda tmp: df.write_parquet(tmp, compression="zstd", compression_level=3, statistics=True)
    )


def read_parquet(path: str | os.PathLike, schema: str | TableSchema | None = None) -> pl.DataFrame:
    """Read a Parquet artifact; a missing, truncated or off-schema file raises naming the file."""
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p}: file does not exist")
    try:
        df = pl.read_parquet(p)
    except Exception as err:  # polars raises several error types for corrupt files
        raise ArtifactError(f"{p}: not a readable Parquet file ({type(err).__name__}: {err})") from err
    if schema is not None:
        try:
            df = conform(df, schema)
        except (ArtifactError, pl.exceptions.PolarsError) as err:
            raise ArtifactError(f"{p}: {err}") from err
    return df
