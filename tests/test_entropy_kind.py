"""entropy_kind per cell (issue 9): derived from the model config, in FEATURES, checked by the fit."""

from __future__ import annotations

import polars as pl
import pytest

from bongain import config as bconf
from bongain.fit.table import check_entropy_kinds
from test_fit import make_grid_cells


def _config(**models: dict) -> dict:
    cfg = {"models": {name: {"source": {"kind": "local", "path": "x"}, **m} for name, m in models.items()}}
    for m in cfg["models"].values():
        m.setdefault("backend", "transformers")
        m["vllm"] = bconf.complete_block("models.*.vllm", m.get("vllm", {}))
    return cfg


def test_entropy_kind_from_backend_and_vllm_mode() -> None:
    cfg = _config(
        a={},
        b={"backend": "vllm"},
        c={"backend": "vllm", "vllm": {"entropy": "topk_mid", "logprobs": 20}},
        d={"backend": "vllm", "vllm": {"entropy": "hf_rescore"}},
        e={"backend": "transformers", "vllm": {"entropy": "topk_lower", "logprobs": 3}},
    )
    assert bconf.entropy_kind(cfg, "a") == "exact"
    assert bconf.entropy_kind(cfg, "b") == "topk_lower_k5"  # the schema's defaults: topk_lower, 5 logprobs
    assert bconf.entropy_kind(cfg, "c") == "topk_mid_k20"
    assert bconf.entropy_kind(cfg, "d") == "exact"
    assert bconf.entropy_kind(cfg, "e") == "exact"  # the vllm block is ignored by transformers


def test_fit_refuses_mixed_entropy_kinds_unless_allowed() -> None:
    features, _ = make_grid_cells(n_methods=2, n_tasks=3)
    assert set(features["entropy_kind"].to_list()) == {"exact"}
    check_entropy_kinds(features, allow_mixed=False)  # one kind: fine
    mixed = features.with_columns(
        pl.when(pl.col("method") == "me1")
        .then(pl.lit("topk_lower_k5"))
        .otherwise(pl.col("entropy_kind"))
        .alias("entropy_kind")
    )
    with pytest.raises(
        ValueError, match=r"mix entropy kinds.*exact: m/me0/t0.*topk_lower_k5: m/me1/t0"
    ) as err:
        check_entropy_kinds(mixed, allow_mixed=False)
    assert "fit.allow_mixed_entropy" in str(err.value)
    check_entropy_kinds(mixed, allow_mixed=True)


def test_config_default_refuses_mixing() -> None:
    assert bconf.complete_block("fit", {})["allow_mixed_entropy"] is False
