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
    assert "config key 'tasks.Bad/Slug': not a valid name" in error_of(cfg)


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
    assert list(cfg["reward_models"]) == ["verifier", "confidence"]  # config order kept
    assert cfg["reward_models"]["verifier"]["kind"] == "offline_logistic"
    assert cfg["reward_models"]["verifier"]["signals"] == ["mean_logprob", "mean_entropy", "agreement"]
    assert cfg["reward_models"]["confidence"]["C"] == 1.0
    assert cfg["fit"]["reward_model"] is None and cfg["statistics"]["efficiency_gap_floor"] == 0.05
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
    assert "config key 'verifier': replaced by 'reward_models'" in msg
    assert "unknown key" not in msg


def test_single_reward_model_block_is_refused_naming_its_replacement(cfg):
    del cfg["reward_models"]
    cfg["reward_model"] = {"kind": "offline_logistic", "C": 2.0}
    msg = error_of(cfg)
    assert "config key 'reward_model': replaced by 'reward_models' (name -> scorer block" in msg
    assert "reward_models: {verifier: {kind: offline_logistic" in msg
    assert "unknown key" not in msg


def test_default_reward_models_is_one_offline_verifier(cfg):
    del cfg["reward_models"]
    rms = validate_config(cfg)["reward_models"]
    assert list(rms) == ["verifier"] and rms["verifier"]["kind"] == "offline_logistic"
    assert rms["verifier"]["signals"] == ["mean_logprob", "mean_entropy", "agreement"]


def test_scorer_options_live_under_each_reward_model(cfg):
    cfg["reward_models"]["confidence"] = {"kind": "offline_logistic", "signals": ["vibes"]}
    assert "config key 'reward_models.confidence.signals.0'" in error_of(cfg)


@pytest.mark.parametrize("name", ["Verifier", "my rm", "a/b", "../x", ".hidden", ""])
def test_reward_model_name_must_be_a_path_component(cfg, name):
    cfg["reward_models"][name] = {"kind": "offline_logistic"}
    msg = error_of(cfg)
    assert f"config key 'reward_models.{name}': not a valid name" in msg and "path component" in msg


def test_unknown_reward_model_kind_names_the_key(cfg):
    cfg["reward_models"]["confidence"]["kind"] = "oracle_vibes"
    assert "config key 'reward_models.confidence.kind': 'oracle_vibes' is not one of" in error_of(cfg)
    cfg["reward_models"]["confidence"] = {"kind": "hf_prm"}  # a pretrained kind needs its model
    assert "config key 'reward_models.confidence': 'model' is a required property" in error_of(cfg)


def test_no_reward_model_and_an_unknown_fit_reward_model_are_refused(cfg):
    bad = copy.deepcopy(cfg)
    bad["reward_models"] = {}
    assert "config key 'reward_models'" in error_of(bad)
    cfg["fit"]["reward_model"] = "skywork"
    msg = error_of(cfg)
    assert "config key 'fit.reward_model': 'skywork' is not defined under 'reward_models'" in msg
    cfg["fit"]["reward_model"] = "confidence"
    from bongain.config import primary_reward_model

    assert primary_reward_model(validate_config(cfg)) == "confidence"


def test_two_reward_models_with_one_name_are_refused_where_the_file_is_read(repo, tmp_path):
    """YAML loaders keep the last of two equal keys silently; reading a config file refuses them, naming the
    key and both lines (the Snakefile reads its config files this way before validating)."""
    from bongain.config import check_config_files

    text = (repo / "config" / "test.yaml").read_text()
    lines = text.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("  confidence:"))
    lines.insert(at + 1, "  verifier: { kind: offline_logistic, C: 3.0 }")
    bad = tmp_path / "dup.yaml"
    bad.write_text("\n".join(lines) + "\n")
    first = next(i for i, ln in enumerate(lines) if ln.startswith("  verifier:")) + 1
    for call in (load_config, lambda p: check_config_files([p])):
        with pytest.raises(ConfigError) as exc:
            call(bad)
        msg = str(exc.value)
        assert str(bad) in msg
        assert f"config key 'reward_models.verifier': defined twice (lines {first} and {at + 2})" in msg
    # merge keys may be overridden; keys inside lists of mappings are checked per item
    ok = tmp_path / "merge.yaml"
    ok.write_text("base: &b {a: 1, c: 2}\nother:\n  <<: *b\n  a: 3\nlist:\n  - {x: 1}\n  - {x: 2}\n")
    check_config_files([ok])
    dup = tmp_path / "list.yaml"
    dup.write_text("cells:\n  - {model: a, model: b}\n")
    with pytest.raises(ConfigError, match=r"config key 'cells\.0\.model': defined twice \(lines 2 and 2\)"):
        check_config_files([dup])


def test_complete_block_names_the_key():
    from bongain.config import complete_block

    assert complete_block("fit")["stability"]["n_boot"] == 200
    with pytest.raises(ConfigError, match=r"config key 'fit.stability.threshold'"):
        complete_block("fit", {"stability": {"threshold": 2}})


def test_report_names_what_scored(repo):
    from bongain.config import report_summary

    cfg = load_config(repo / "config" / "paper.yaml")
    assert report_summary(cfg)["scored by (reward_models)"] == {
        "skywork": "vllm_classify (Skywork/Skywork-Reward-V2-Llama-3.1-8B)"
    }
    cfg = load_config(repo / "config" / "test.yaml")
    assert report_summary(cfg)["scored by (reward_models)"] == {
        "verifier": "offline_logistic",
        "confidence": "offline_logistic",
    }


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
    cfg["fit"]["target"] = "oracle"
    assert validate_config(cfg)["fit"]["target"] == "oracle"
