"""Config validation: every error names the key; cells enumeration."""

from __future__ import annotations

import copy

import pytest
import yaml

from bongain.config import Cell, ConfigError, cells, load_config, validate_config


@pytest.fixture()
def cfg(repo):
    """The tiny test config, raw (the tests below break it in one place each)."""
    with open(repo / "config" / "test.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture()
def default(repo):
    with open(repo / "config" / "config.yaml") as fh:
        return yaml.safe_load(fh)


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    return str(exc.value)


def test_shipped_configs_are_valid(repo):
    for path in sorted((repo / "config").glob("*.yaml")):
        load_config(path)


def test_default_has_at_least_24_cells(default):
    assert len(cells(default)) >= 24


def test_unknown_top_level_key(cfg):
    cfg["sampels"] = {}
    assert "config key 'sampels': unknown key" in error_of(cfg)


def test_unknown_nested_key(cfg):
    cfg["methods"]["fewshot-t07"]["temprature"] = 0.3
    assert "config key 'methods.fewshot-t07.temprature': unknown key" in error_of(cfg)


def test_wrong_type(cfg):
    cfg["sampling"]["n"] = "eight"
    assert "config key 'sampling.n'" in error_of(cfg)


def test_n_below_one(cfg):
    cfg["sampling"]["n"] = 0
    msg = error_of(cfg)
    assert "config key 'sampling.n'" in msg and "minimum" in msg


def test_cell_naming_missing_model(cfg):
    cfg["cells"] = [{"model": "gpt-17", "method": "fewshot-t07", "task": "add1"}]
    msg = error_of(cfg)
    assert "config key 'cells.0.model': 'gpt-17' is not defined under 'models'" in msg


def test_bad_slug(cfg):
    cfg["tasks"]["Bad/Slug"] = {"generator": "add1", "answer_type": "number"}
    assert "config key 'tasks'" in error_of(cfg)


def test_task_needs_exactly_one_source(cfg):
    cfg["tasks"]["add1"]["jsonl"] = "x.jsonl"
    assert "config key 'tasks.add1'" in error_of(cfg)


def test_missing_source_field(cfg):
    del cfg["models"]["smollm2-135m"]["source"]["file"]
    assert "config key 'models.smollm2-135m.source.file': required" in error_of(cfg)


def test_all_errors_reported_at_once(cfg):
    bad = copy.deepcopy(cfg)
    bad["sampling"]["n"] = 0
    bad["methods"]["chat-t07"]["temperature"] = -1
    msg = error_of(bad)
    assert "sampling.n" in msg and "methods.chat-t07.temperature" in msg


def test_explicit_cells_and_duplicates(cfg):
    cfg["cells"] = [{"model": "smollm2-135m", "method": "fewshot-t07", "task": "add1"}]
    assert cells(cfg) == [Cell("smollm2-135m", "fewshot-t07", "add1")]
    cfg["cells"] = cfg["cells"] * 2
    with pytest.raises(ConfigError, match="duplicate"):
        cells(cfg)


def test_bad_yaml_names_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("models: [\n")
    with pytest.raises(ConfigError, match=str(p)):
        load_config(p)


def test_shipped_configs_build_every_task_split(repo):
    """Every task of every shipped config builds all its splits with the config's sizes."""
    from bongain.config import split_sizes
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import build_splits

    for path in sorted((repo / "config").glob("*.yaml")):
        cfg = load_config(path)
        for slug, task in cfg["tasks"].items():
            if "hf_dataset" in task:  # needs the hub; its record conversion is tested in test_tasks.py
                continue
            spec = TaskSpec.from_config(task)
            blocks = build_splits(slug, spec, split_sizes(cfg), cfg["splits"].get("seed", 0))
            assert blocks["test"].height == cfg["splits"]["test"], (path.name, slug)


def test_grid_leaves_out_screened_cells(default):
    from bongain.fit.screening import split_cells

    cfg = default
    evaluated, screened = split_cells(cfg)
    assert len(screened) == len(cfg["screen"]) > 0
    assert not set(evaluated) & set(screened)
    all_combos = len(cfg["models"]) * len(cfg["methods"]) * len(cfg["tasks"])
    assert len(evaluated) + len(screened) == all_combos


def test_explicit_cell_cannot_also_be_screened(cfg):
    from bongain.fit.screening import split_cells

    cell = {"model": "smollm2-135m", "method": "fewshot-t07", "task": "add1"}
    cfg["cells"] = [cell]
    cfg["screen"] = [cell]
    with pytest.raises(ConfigError, match=r"config key 'screen.0'.*also an evaluated cell"):
        split_cells(cfg)


def test_screened_cell_naming_unknown_method(cfg):
    from bongain.fit.screening import split_cells

    cfg["screen"] = [{"model": "smollm2-135m", "method": "beam-search", "task": "add1"}]
    with pytest.raises(ConfigError, match=r"config key 'screen.0.method'"):
        split_cells(cfg)


def test_defaults_are_filled_once_from_the_schema(repo):
    cfg = load_config(repo / "config" / "test.yaml")
    # every block and key with a schema default is present, so modules index without .get(key, default)
    assert cfg["results_dir"] == "results/test" and cfg["cells"] == "grid" and cfg["screen"] == []
    assert cfg["sampling"]["shard_prompts"] is None and cfg["grading"]["timeout_s"] == 5
    assert cfg["methods"]["fewshot-t07"]["top_p"] == 1.0
    assert cfg["methods"]["chat-t07"]["fewshot_k"] == 4
    assert cfg["models"]["smollm2-135m"]["vllm"]["entropy"] == "topk_lower"
    assert cfg["reward_model"]["kind"] == "offline_logistic"
    assert cfg["reward_model"]["signals"] == ["mean_logprob", "mean_entropy", "agreement"]
    assert cfg["fit"]["stability"]["cells_per_feature"] == 4
    assert cfg["fit"]["concentration"]["n_samples_grid"] == [4, 8, 16, 32]
    assert cfg["statistics"]["weight"] == "softmax"
    # a given value is never replaced, and validating a completed config changes nothing
    assert cfg["methods"]["fewshot-t07"]["fewshot_k"] == 3
    again = validate_config(copy.deepcopy(cfg))
    assert again == cfg


def test_an_invalid_config_is_left_untouched(cfg):
    cfg["sampling"]["n"] = 0
    before = copy.deepcopy(cfg)
    error_of(cfg)
    assert cfg == before


def test_old_verifier_block_names_its_replacement(cfg):
    cfg["verifier"] = {"kind": "offline_logistic", "C": 2.0}
    msg = error_of(cfg)
    assert "config key 'verifier': replaced by 'reward_model'" in msg
    assert "unknown key" not in msg


def test_scorer_options_live_under_reward_model(cfg):
    cfg["reward_model"] = {"kind": "offline_logistic", "signals": ["vibes"]}
    assert "config key 'reward_model.signals.0'" in error_of(cfg)


def test_complete_block_names_the_key():
    from bongain.config import complete_block

    assert complete_block("fit")["stability"]["n_boot"] == 200
    with pytest.raises(ConfigError, match=r"config key 'fit.stability.threshold'"):
        complete_block("fit", {"stability": {"threshold": 2}})


def test_report_names_what_scored(repo):
    from bongain.config import report_summary

    cfg = load_config(repo / "config" / "paper.yaml")
    assert report_summary(cfg)["scored by (reward_model)"] == (
        "vllm_classify (Skywork/Skywork-Reward-V2-Llama-3.1-8B)"
    )
    cfg = load_config(repo / "config" / "test.yaml")
    assert report_summary(cfg)["scored by (reward_model)"] == "offline_logistic"


def test_constants_match_the_config_schema(repo):
    from bongain import constants

    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]
    task = props["tasks"]["additionalProperties"]["properties"]
    assert task["answer_type"]["enum"] == list(constants.ANSWER_TYPES)
    method = props["methods"]["additionalProperties"]["properties"]
    assert method["prompt_format"]["enum"] == list(constants.PROMPT_FORMATS)
    assert list(props["splits"]["required"]) == list(constants.SPLITS)
    assert sorted(props["splits"]["properties"]) == sorted([*constants.BLOCKS, "seed"])


def test_fit_target_defaults_to_bon_and_unknown_targets_name_the_key(cfg):
    assert validate_config(copy.deepcopy(cfg))["fit"]["target"] == "bon"
    ok = copy.deepcopy(cfg)
    ok.setdefault("fit", {})["target"] = "selfcert"
    assert validate_config(ok)["fit"]["target"] == "selfcert"
    cfg.setdefault("fit", {})["target"] = "best"
    assert "config key 'fit.target'" in error_of(cfg)
