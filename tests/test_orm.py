"""The study's outcome reward model: near-miss answers, training rows and pairs, training, merging."""

from __future__ import annotations

import pytest

from bongain.grading.answers import extract_answer
from bongain.grading.compare import is_correct
from bongain.orm.data import near_misses, numeric_candidates
from bongain.tasks.generators import generate


@pytest.mark.parametrize("generator", ["add2d1d", "sub2d1d", "deccmp", "mul1"])
def test_near_misses_are_wrong_and_graded_wrong(generator: str) -> None:
    for question, gold in generate(generator)[:300]:
        cands = near_misses(question, gold, "number", 50, seed=0)
        assert cands, question
        assert len(set(cands)) == len(cands)
        for c in cands:
            # the grader reads the answer a policy would write (" 54") and calls it wrong
            assert not is_correct(extract_answer(f" {c}", "number", "fewshot"), gold, "number"), (question, c)


def test_near_misses_brute_force_small_cases() -> None:
    # 47 + 8 = 55: +-1, 2, 3, 10 units; digit edits of "55" (+-1 per digit, one dropped); the operands
    assert numeric_candidates("What is 47 + 8?", "55") == {
        "56", "54", "57", "53", "58", "52", "65", "45", "5", "47", "8",
    }  # fmt: skip
    # decimal gold: units of its last digit (0.1); the other number of the question is a candidate
    cands = numeric_candidates("Which is larger: 3.7 or 3.65?", "3.7")
    assert {"3.65", "3.6", "3.8", "4.7", "2.7", "3", "0.7"} <= cands
    assert "3.7" not in cands


def test_near_misses_seeded_prefix_and_choice() -> None:
    q, g = "What is 47 + 8?", "55"
    full = near_misses(q, g, "number", 100, seed=3)
    assert near_misses(q, g, "number", 4, seed=3) == full[:4]
    assert sorted(full) == sorted(numeric_candidates(q, g))
    assert near_misses(q, g, "number", 100, seed=4) != full  # another seed, another order
    assert sorted(near_misses("Pick one", "b", "choice", 9, seed=0)) == ["A", "C", "D", "E"]
    assert near_misses("Simplify", "x+1", "math", 5, seed=0) == []
    with pytest.raises(ValueError, match="answer_type"):
        near_misses(q, g, "essay", 3, seed=0)


def test_near_miss_rows_label_with_the_grader() -> None:
    import polars as pl

    from bongain.orm.data import near_miss_rows

    tasks = pl.DataFrame(
        {
            "task": ["t", "t"],
            "split": ["rm_train"] * 2,
            "prompt_id": ["t-1", "t-2"],
            "question": ["What is 47 + 8?", "Which is larger: 3.7 or 3.65?"],
            "gold": ["55", "3.7"],
            "answer_type": ["number", "number"],
        }
    )
    rows = near_miss_rows(tasks, k=3, seed=0)
    assert rows.height == 2 * (1 + 3)
    gold = rows.filter(pl.col("source") == "gold")
    assert gold["completion"].to_list() == [" 55", " 3.7"] and gold["correct"].all()
    miss = rows.filter(pl.col("source") == "near_miss")
    assert not miss["correct"].any()
    assert miss.group_by("prompt_id").len()["len"].to_list() == [3, 3]


def test_preference_pairs_same_question_every_rejected_once() -> None:
    from bongain.orm.data import OrmDataError, preference_pairs

    q = ["a", "a", "a", "b", "b", "c"]
    ok = [True, False, False, True, False, False]  # c has no correct row: never paired
    pairs = preference_pairs(q, ok, 3, seed=0)
    assert sorted(r for _, r in pairs) == [1, 2, 4]
    assert all(q[c] == q[r] and ok[c] and not ok[r] for c, r in pairs)
    longer = preference_pairs(q, ok, 7, seed=0)
    assert longer[:3] == pairs and longer[3:6] == pairs and longer[6] == pairs[0]
    assert preference_pairs(q, ok, 3, seed=0) == pairs  # seeded
    with pytest.raises(OrmDataError, match="both a correct and an incorrect"):
        preference_pairs(["a", "b"], [True, False], 2, seed=0)


# --- carving, disjointness, bad input -----------------------------------------------------------------

DEFAULT_SIZES = {"exemplars": 4, "verifier_train": 24, "validation": 32, "test": 64, "posttrain": 64}


def _opts(**kw):
    from bongain.config import complete_block

    return complete_block("reward_models.*", {"kind": "orm", **kw})


@pytest.mark.parametrize("task", ["add2d1d", "sub2d1d", "deccmp"])
def test_training_questions_are_never_a_split_question(task: str) -> None:
    """Checked against the split tables the task_split rule writes (every block), by brute force."""
    import polars as pl

    from bongain.orm.data import training_data
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import build_splits, questions_after_blocks

    spec = TaskSpec.from_config({"generator": task, "answer_type": "number"})
    tables = build_splits(task, spec, DEFAULT_SIZES, seed=0)
    qs = questions_after_blocks(task, spec, DEFAULT_SIZES, 0, 5000)
    assert qs.height > 500 and qs["question"].n_unique() == qs.height
    rows = training_data(
        qs,
        {b: tables[b] for b in ("validation", "test")},
        negatives=3,
        seed=0,
        n_pairs=100,
        key="reward_models.orm",
    )
    held = set(rows["question"])
    for block, table in tables.items():  # not only validation and test: no block's question at all
        assert not held & set(table["question"]), block
        assert not set(rows["prompt_id"]) & set(table["prompt_id"]), block
    # carving after the blocks moves nothing: the blocks are the same with or without the orm questions
    assert build_splits(task, spec, DEFAULT_SIZES, seed=0)["test"].equals(tables["test"])
    # more posttrain questions push the orm questions further: still disjoint
    more = questions_after_blocks(task, spec, {**DEFAULT_SIZES, "posttrain": 200}, 0, 50)
    assert not set(more["question"]) & set(
        build_splits(task, spec, {**DEFAULT_SIZES, "posttrain": 200}, 0)["posttrain"]["question"]
    )
    assert rows.filter(pl.col("source") == "gold")["correct"].all()


def test_a_shared_question_is_refused_naming_the_table() -> None:
    import polars as pl

    from bongain.orm.data import OrmDataError, check_disjoint

    rows = pl.DataFrame({"prompt_id": ["t-1", "t-2"], "question": ["What is 1 + 2?", "What is 3 + 4?"]})
    test = pl.DataFrame({"prompt_id": ["t-9"], "question": ["What is 3 + 4?"]})
    with pytest.raises(OrmDataError, match=r"reward_models\.orm.*also in tasks/t/test\.parquet.*3 \+ 4"):
        check_disjoint(rows, {"tasks/t/test.parquet": test}, "reward_models.orm")
    check_disjoint(rows, {"tasks/t/test.parquet": test.head(0)}, "reward_models.orm")


def test_no_incorrect_or_too_few_pairs_name_the_keys() -> None:
    import polars as pl

    from bongain.orm.data import OrmDataError, available_pairs, check_pairs

    all_right = pl.DataFrame({"question": ["a", "b"], "correct": [True, True]})
    with pytest.raises(OrmDataError, match=r"'reward_models\.orm': .* 2 correct and 0 incorrect"):
        check_pairs(all_right, 1, "reward_models.orm")
    all_wrong = pl.DataFrame({"question": ["a", "b"], "correct": [False, False]})
    with pytest.raises(OrmDataError, match="0 correct and 2 incorrect"):
        check_pairs(all_wrong, 1, "reward_models.orm")
    rows = pl.DataFrame({"question": ["a", "a", "a", "b", "c"], "correct": [True, False, False, False, True]})
    assert available_pairs(rows) == 2  # b's wrong answer has no correct partner
    check_pairs(rows, 2, "reward_models.orm")
    with pytest.raises(OrmDataError, match=r"'reward_models\.orm\.steps'.*3 pairs.*only 2 distinct"):
        check_pairs(rows, 3, "reward_models.orm")


def test_config_orm_kind_and_its_errors(repo) -> None:
    from bongain.config import ConfigError, load_config, orm_backbone, validate_config

    raw = load_config(repo / "config" / "config.yaml")
    raw["reward_models"] = {"verifier": {}, "orm": {"kind": "orm"}}
    cfg = validate_config(raw)
    assert cfg["reward_models"]["orm"]["kind"] == "orm" and cfg["reward_models"]["orm"]["model"] is None
    assert orm_backbone(cfg, "orm") == "smollm2-135m"

    def error(**block):
        raw = load_config(repo / "config" / "config.yaml")
        raw["reward_models"] = {"verifier": {}, "mine": {"kind": "orm", **block}}
        with pytest.raises(ConfigError) as err:
            validate_config(raw)
        return str(err.value)

    assert "config key 'reward_models.mine.backbone': 'llama-70b' is not defined under 'models'" in error(
        backbone="llama-70b"
    )
    assert "config key 'reward_models.mine.steps'" in error(max_questions_per_task=10, negatives=1)
    assert "config key 'reward_models.mine.negatives'" in error(negatives=0)
    assert "config key 'reward_models.mine.learning_rate'" in error(learning_rate=-1)


# --- training and merging a tiny reward model -----------------------------------------------------------


def _toy_rows(n: int, start: int = 0):
    """A separable toy task: the right answer is always ' a', the wrong ones ' b' and ' c'."""
    import polars as pl

    rows = []
    for i in range(start, start + n):
        q = f"what is {i % 100} + {(i // 100) % 10} ?"
        rows += [("toy", f"toy-{i}", q, " a", True, "gold")]
        rows += [("toy", f"toy-{i}", q, w, False, "near_miss") for w in (" b", " c")]
    return pl.DataFrame(
        rows, schema=["task", "prompt_id", "question", "completion", "correct", "source"], orient="row"
    )


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    """A tiny random Llama causal LM and the word-level test tokenizer: the backbone of a toy ORM."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from fakes.tiny_tokenizer import build_tokenizer

    tok = build_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("backbone") / "hf"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


TOY = {"steps": 40, "train_batch_size": 8, "learning_rate": 0.01, "lora_r": 4, "lora_alpha": 8, "threads": 1}


@pytest.fixture(scope="module")
def toy_orm(tiny_backbone, tmp_path_factory):
    from bongain.orm.train import merge_orm, train_orm

    out = tmp_path_factory.mktemp("orm")
    log = train_orm(
        backbone_path=tiny_backbone,
        data=_toy_rows(200),
        opts=_opts(**TOY),
        rm="orm",
        adapter_dir=out / "adapter",
    )
    manifest = merge_orm({"path": str(tiny_backbone)}, out / "adapter", out)
    return out, log, manifest


def _registry_scores(checkpoint, rows):
    """Scores through the score job's path: the orm kind -> hf_sequence_classification on the checkpoint."""
    import polars as pl

    from bongain.scoring.registry import make_scorer

    questions = dict(zip(rows["prompt_id"], rows["question"], strict=False))
    scorer = make_scorer(_opts(batch_size=5), questions=questions, snapshot=str(checkpoint))
    samples = rows.select("prompt_id", "completion").with_columns(sample_idx=pl.int_range(pl.len()))
    return scorer, scorer.score(samples, None)


def test_a_tiny_orm_learns_a_separable_toy_task(toy_orm) -> None:
    import numpy as np
    import polars as pl

    from bongain.schemas import ORM_LOG

    _, log, manifest = toy_orm
    assert log.schema == ORM_LOG.polars_schema
    assert log["step"].to_list() == list(range(1, TOY["steps"] + 1))
    assert log["pairs_seen"][-1] == TOY["steps"] * TOY["train_batch_size"]
    assert log["loss"].head(5).mean() > 2 * log["loss"].tail(5).mean()
    held_out = _toy_rows(50, start=500)  # questions never trained on
    scorer, r = _registry_scores(manifest["path"], held_out)
    assert scorer.name == "orm"
    r = r.reshape(-1, 3)  # per question: [" a", " b", " c"]
    assert (r[:, 0] > r[:, 1:].max(axis=1)).all()
    assert not np.isnan(r).any()
    assert held_out.filter(pl.col("correct")).height == 50


def test_merged_checkpoint_scores_equal_the_adapter_models(toy_orm, tiny_backbone) -> None:
    import numpy as np
    import torch
    from peft import PeftModel

    from bongain.orm.train import encode_rows, load_classifier, load_tokenizer
    from bongain.scoring.hf_rm import score_sequences

    out, _, manifest = toy_orm
    rows = _toy_rows(30, start=700)
    _, merged = _registry_scores(manifest["path"], rows)
    tok = load_tokenizer(out / "adapter")
    torch.manual_seed(123)  # another random head in the base: the adapter's trained head must replace it
    with_adapter = PeftModel.from_pretrained(load_classifier(tiny_backbone, tok), str(out / "adapter")).eval()
    seqs = encode_rows(tok, rows["question"].to_list(), rows["completion"].to_list())
    adapter = score_sequences(with_adapter, seqs, pad_id=tok.pad_token_id, batch_size=7)
    np.testing.assert_allclose(merged, adapter, rtol=1e-5, atol=1e-5)
    assert np.ptp(merged) > 0.1  # not a constant: the comparison means something


def test_training_is_seeded(tiny_backbone, tmp_path) -> None:
    from bongain.orm.train import train_orm

    opts = _opts(**{**TOY, "steps": 5})
    a = train_orm(
        backbone_path=tiny_backbone, data=_toy_rows(60), opts=opts, rm="o", adapter_dir=tmp_path / "a"
    )
    b = train_orm(
        backbone_path=tiny_backbone, data=_toy_rows(60), opts=opts, rm="o", adapter_dir=tmp_path / "b"
    )
    assert a.drop("wall_s").equals(b.drop("wall_s"))
    sa = (tmp_path / "a" / "adapter_model.safetensors").read_bytes()
    assert sa == (tmp_path / "b" / "adapter_model.safetensors").read_bytes()


def test_a_diverging_run_names_the_key_and_keeps_the_old_adapter(tiny_backbone, tmp_path) -> None:
    from bongain.orm.data import OrmDataError
    from bongain.orm.train import train_orm
    from bongain.posttrain.train import TrainingDiverged

    old = tmp_path / "adapter"
    old.mkdir()
    (old / "adapter_model.safetensors").write_bytes(b"the previous adapter")
    opts = _opts(**{**TOY, "steps": 20, "learning_rate": 1e12})
    with pytest.raises(TrainingDiverged, match=r"reward_models\.orm\.learning_rate"):
        train_orm(backbone_path=tiny_backbone, data=_toy_rows(200), opts=opts, rm="orm", adapter_dir=old)
    assert (old / "adapter_model.safetensors").read_bytes() == b"the previous adapter"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # no staging folder left behind
    with pytest.raises(OrmDataError, match=r"reward_models\.orm\.steps"):
        train_orm(
            backbone_path=tiny_backbone, data=_toy_rows(10), opts=_opts(**TOY), rm="orm", adapter_dir=old
        )
    with pytest.raises(OrmDataError, match=r"reward_models\.orm\.max_length"):
        opts = _opts(**{**TOY, "steps": 1, "max_length": 4})
        train_orm(backbone_path=tiny_backbone, data=_toy_rows(10), opts=opts, rm="orm", adapter_dir=old)
    assert (old / "adapter_model.safetensors").read_bytes() == b"the previous adapter"


# --- the rules, in a real Snakemake run ------------------------------------------------------------------


def _smk(repo, *args, workdir=None, check=True):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *args]
    if workdir is not None:
        cmd += ["--directory", str(workdir)]
    res = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=1800)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}")
    return res


def _jobs(text: str) -> dict[str, int]:
    import re

    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", text, re.M) if m[1] != "total"}


@pytest.mark.slow
def test_orm_rules_end_to_end_cached_and_disjoint(repo, tmp_path) -> None:
    """The tiny config plus a tiny orm on the real SmolLM2: data, training, merge, one cell scored;
    the training questions checked against the run's split tables; unrelated changes retrain nothing."""
    import polars as pl
    import yaml

    from bongain.io import read_parquet

    cfg = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    tiny = {"kind": "orm", "max_questions_per_task": 30, "negatives": 1, "steps": 3, "train_batch_size": 4}
    cfg["reward_models"] = {"verifier": {"kind": "offline_logistic"}, "orm": tiny}
    path = tmp_path / "orm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    results = tmp_path / "results" / "test"
    target = "results/test/cells/smollm2-135m/fewshot-t07/add1/test/scores/orm.parquet"
    config = ["--configfile", str(path)]
    _smk(repo, target, "--cores", "2", *config, workdir=tmp_path)
    data = read_parquet(results / "orm" / "orm" / "dataset.parquet", "orm_data")
    assert set(data["task"]) == {"add1", "deccmp"} and data["correct"].any() and not data["correct"].all()
    for table in (results / "tasks").glob("*/*.parquet"):  # every split table the run wrote
        split = read_parquet(table, "tasks")
        assert not set(data["question"]) & set(split["question"]), table
    log = read_parquet(results / "orm" / "orm" / "train_log.parquet", "orm_log")
    assert log["step"].to_list() == [1, 2, 3] and log["threads"].unique().to_list() == [2]
    scores = read_parquet(tmp_path / target, "scores")
    samples = read_parquet(results / "cells/smollm2-135m/fewshot-t07/add1/test/samples.parquet", "samples")
    assert scores.height == samples.height and scores["rm"].unique().to_list() == ["orm"]
    assert scores["verifier"].unique().to_list() == ["orm"]
    assert scores.filter(pl.col("score_status") == "ok")["reward"].is_finite().all()
    # the scoring batch size and another stage's settings are not training inputs: nothing retrains
    other = {**tiny, "batch_size": 3}
    cfg2 = {**cfg, "reward_models": {"verifier": {"kind": "offline_logistic"}, "orm": other}}
    cfg2["statistics"] = {"n_boot": 123}
    path.write_text(yaml.safe_dump(cfg2))
    jobs = _jobs(_smk(repo, target, "-n", "--cores", "1", *config, workdir=tmp_path).stdout)
    assert not {"orm_data", "orm_train", "orm_merge"} & set(jobs), jobs
    # a training key retrains (and rescores), but rebuilds no data
    cfg2["reward_models"]["orm"] = {**tiny, "learning_rate": 0.001}
    path.write_text(yaml.safe_dump(cfg2))
    jobs = _jobs(_smk(repo, target, "-n", "--cores", "1", *config, workdir=tmp_path).stdout)
    assert jobs.get("orm_train") == 1 and jobs.get("orm_merge") == 1 and jobs.get("score") == 1
    assert "orm_data" not in jobs
