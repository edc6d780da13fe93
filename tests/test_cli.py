"""The bongain command line."""

from __future__ import annotations

import polars as pl

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
