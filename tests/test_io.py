"""Atomic, schema-checked Parquet IO and errors that name the file."""

from __future__ import annotations

import polars as pl
import pytest

from bongain.io import ArtifactError, conform, read_parquet, write_parquet_atomic
from bongain.schemas import ALL, markdown


def task_frame():
    return pl.DataFrame(
        {
            "task": ["t"],
            "split": ["test"],
            "prompt_id": ["t-0"],
            "question": ["q"],
            "gold": ["1"],
            "answer_type": ["number"],
        }
    )


def test_roundtrip_and_column_order(tmp_path):
    df = task_frame().select(reversed(task_frame().columns))
    p = write_parquet_atomic(df, tmp_path / "a" / "x.parquet", "tasks")
    back = read_parquet(p, "tasks")
    assert back.columns == list(ALL["tasks"].columns)
    assert not list(tmp_path.glob("a/.*tmp"))


def test_same_frame_same_bytes(tmp_path):
    a = write_parquet_atomic(task_frame(), tmp_path / "a.parquet", "tasks").read_bytes()
    b = write_parquet_atomic(task_frame(), tmp_path / "b.parquet", "tasks").read_bytes()
    assert a == b


def test_missing_and_extra_columns():
    with pytest.raises(ArtifactError, match="missing column"):
        conform(task_frame().drop("gold"), "tasks")
    with pytest.raises(ArtifactError, match="not in the documented schema"):
        conform(task_frame().with_columns(extra=pl.lit(1)), "tasks")


def test_failed_write_leaves_previous_file(tmp_path):
    p = write_parquet_atomic(task_frame(), tmp_path / "x.parquet", "tasks")
    before = p.read_bytes()
    with pytest.raises(ArtifactError):
        write_parquet_atomic(task_frame().drop("gold"), p, "tasks")
    assert p.read_bytes() == before


def test_corrupt_file_is_named(tmp_path):
    p = write_parquet_atomic(task_frame(), tmp_path / "x.parquet", "tasks")
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(ArtifactError, match=str(p)):
        read_parquet(p)
    with pytest.raises(ArtifactError, match="does not exist"):
        read_parquet(tmp_path / "nope.parquet")


def test_off_schema_file_is_named(tmp_path):
    p = tmp_path / "x.parquet"
    task_frame().drop("gold").write_parquet(p)
    with pytest.raises(ArtifactError, match=rf"{p}.*missing column"):
        read_parquet(p, "tasks")


def test_docs_artifacts_in_sync(repo):
    assert (repo / "docs" / "artifacts.md").read_text() == markdown() + "\n"


def test_network_guard_refuses_connections():
    import socket

    from conftest import network_forbidden

    with network_forbidden(), pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9))
