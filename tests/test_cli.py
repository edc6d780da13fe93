"""The bongain command line."""

from __future__ import annotations

import polars as pl
import pytest

from bongain.cli import column_stats, main


def test_cells_lists_grid(repo, capsys):
    assert main(["cells", "--configfile", str(repo / "config" / "config.yaml")]) == 0
    lines = capsys.readouterr().out.split()
    assert len(lines) == 24 and "gemma3-270m/dpo/deccmp" in lines


def test_cells_paths(repo, capsys):
    assert main(["cells", "--paths", "--configfile", str(repo / "config" / "test.yaml")]) == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "results/test/cells/smollm2-135m/fewshot-t07/add1/gains/verifier.parquet"


def test_cells_bad_config_names_key(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("models: {}\n")
    assert main(["cells", "--configfile", str(p)]) == 2
    assert "config key 'models'" in capsys.readouterr().err


def test_inspect(tmp_path, capsys):
    p = tmp_path / "x.parquet"
    pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "y"]}).write_parquet(p)
    assert main(["inspect", str(p)]) == 0
    out = capsys.readouterr().out
    assert "rows: 3" in out and "a: Int64" in out and "column statistics" in out


def test_inspect_corrupt(tmp_path, capsys):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"PAR1garbage")
    assert main(["inspect", str(p)]) == 1
    assert str(p) in capsys.readouterr().err


def test_column_stats():
    st = column_stats(pl.DataFrame({"a": [1.0, 3.0], "b": [True, False]}))
    assert st.filter(pl.col("column") == "a")["mean"][0] == 2.0
    assert st.filter(pl.col("column") == "b")["mean"][0] == 0.5


def _split_tables(d, n_prompts=2, n=3, drop_grade=False):
    """A hand-built cell split (samples, grades, one reward model's scores) written as the stages do."""
    from bongain.io import write_parquet_atomic

    keys = {
        "model": "m",
        "method": "x",
        "task": "t",
        "split": "test",
    }
    rows = [(f"t-{i:05d}", j) for i in range(n_prompts) for j in range(n)]
    base = pl.DataFrame(
        {"prompt_id": [p for p, _ in rows], "sample_idx": pl.Series([j for _, j in rows], dtype=pl.Int32)}
    ).with_columns(**{k: pl.lit(v) for k, v in keys.items()})
    samples = base.with_columns(
        prompt=pl.lit("Q"),
        completion=pl.format("answer {}", pl.col("sample_idx")),
        n_tokens=pl.lit(3, dtype=pl.Int32),
        finish_reason=pl.lit("stop"),
        sum_logprob=pl.lit(-1.5),
        mean_logprob=pl.lit(-0.5),
        mean_entropy=pl.lit(0.7),
        self_certainty=pl.lit(2.0),
        seed=pl.lit(1, dtype=pl.Int64),
    )
    grades = base.with_columns(
        answer=pl.col("sample_idx").cast(pl.String), status=pl.lit("ok"), correct=pl.col("sample_idx") == 0
    )
    if drop_grade:
        grades = grades.slice(1)
    scores = base.with_columns(
        rm=pl.lit("v"),
        reward=pl.col("sample_idx").cast(pl.Float64),
        verifier=pl.lit("offline_logistic"),
        score_status=pl.lit("ok"),
    )
    write_parquet_atomic(samples, d / "samples.parquet", "samples")
    write_parquet_atomic(grades, d / "grades.parquet", "grades")
    write_parquet_atomic(scores, d / "scores" / "v.parquet", "scores")


def test_view_joins_by_sample_and_marks_the_best(tmp_path):
    from bongain.report.view import joined_view

    _split_tables(tmp_path / "cells" / "m" / "x" / "t" / "test")
    view = joined_view(tmp_path, "m/x/t", "test")
    assert view.height == 6 and view["reward_v"].to_list() == [0.0, 1.0, 2.0] * 2
    assert view["best_v"].to_list() == [False, False, True] * 2  # the highest reward of each prompt
    assert view["correct"].to_list() == [True, False, False] * 2 and "question" not in view.columns


def test_view_names_the_file_that_does_not_match(tmp_path, capsys):
    from bongain.io import ArtifactError
    from bongain.report.view import joined_view

    d = tmp_path / "cells" / "m" / "x" / "t" / "test"
    _split_tables(d, drop_grade=True)
    with pytest.raises(ArtifactError, match=r"grades.parquet: does not hold the samples .*\(1 missing"):
        joined_view(tmp_path, "m/x/t", "test")
    assert (
        main(["view", "m/x/t", "--results", str(tmp_path), "--configfile", str(tmp_path / "none.yaml")]) == 1
    )
    assert "grades.parquet" in capsys.readouterr().err
    with pytest.raises(ValueError, match="model/method/task"):
        joined_view(tmp_path, "m/x", "test")
