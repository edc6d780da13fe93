"""Post-training: config checks, training data per recipe, a tiny LoRA adapter trained with TRL + PEFT,
its merged checkpoint, and the DAG of a config with post-trained methods.

The model is a tiny random Llama (2 layers, hidden 16) with a byte-level tokenizer, written as a GGUF file
and dequantised by bongain's own converter, so training runs in seconds on 1 thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

from bongain.config import ConfigError, cells, complete_block, load_config, model_families, validate_config
from bongain.io import conform
from bongain.posttrain import recipes as rx
from bongain.posttrain.data import (
    PosttrainDataError,
    dpo_pairs,
    recipe_dataset,
    rft_examples,
    sft_examples,
    target,
)
from bongain.posttrain.merge import merge_adapter
from bongain.posttrain.train import PosttrainSizeError, TrainingDiverged, train_adapter
from bongain.schemas import POSTTRAIN_DATA, POSTTRAIN_LOG
from bongain.tasks.sources import TaskSpec
from bongain.tasks.splits import build_split
from fakes.tiny_gguf import write_tiny_gguf

EOS = "<|endoftext|>"
ADD1 = {"generator": "add1", "answer_type": "number"}
SIZES = {"exemplars": 2, "verifier_train": 4, "validation": 4, "test": 4, "posttrain": 12}


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


@pytest.fixture
def cfg(repo):
    return load_config(repo / "config" / "posttrain-test.yaml")


# ------------------------------------------------------------------ config


def test_posttrain_test_config_is_valid_and_names_its_recipes(cfg):
    assert {m: v["recipe"] for m, v in cfg["methods"].items()} == {
        "base": "none",
        "sft": "sft",
        "rft": "rft",
        "sft-dpo": "sft-dpo",
    }
    assert cfg["posttrain"]["recipes"]["sft-dpo"]["init"] == "sft"
    assert cfg["posttrain"]["lora"]["target_modules"] == "all-linear"  # default filled in


def test_default_config_is_a_post_training_study(repo):
    """The embedded default: two base models, as shipped + three recipes, >= 3 tasks, >= 24 cells."""
    default = load_config(repo / "config" / "config.yaml")
    evaluated = cells(default)
    assert len(evaluated) >= 24
    assert len({c.model for c in evaluated}) == 2
    assert len(set(model_families(default).values())) == 2
    assert len({c.task for c in evaluated}) >= 3
    recipes = {default["methods"][c.method]["recipe"] for c in evaluated}
    assert "none" in recipes and {default["posttrain"]["recipes"][r]["kind"] for r in recipes - {"none"}} == {
        "sft",
        "rft",
        "dpo",
    }
    assert default["splits"]["posttrain"] > 0


def test_unknown_recipe_names_the_method_key(cfg):
    cfg["methods"]["sft"]["recipe"] = "grpo"
    assert "config key 'methods.sft.recipe': unknown recipe 'grpo'" in error_of(cfg)


def test_unknown_recipe_kind_names_the_key(cfg):
    cfg["posttrain"]["recipes"]["rft"]["kind"] = "ppo"
    assert "config key 'posttrain.recipes.rft.kind'" in error_of(cfg)


def test_recipe_named_none_is_refused(cfg):
    cfg["posttrain"]["recipes"]["none"] = {"kind": "sft", "method": "base"}
    assert "config key 'posttrain.recipes.none': a reserved name" in error_of(cfg)


def test_recipe_starting_from_a_missing_checkpoint_names_init(cfg):
    cfg["posttrain"]["recipes"]["sft-dpo"]["init"] = "sfft"
    msg = error_of(cfg)
    assert "config key 'posttrain.recipes.sft-dpo.init': 'sfft' is not a recipe" in msg
    assert "does not exist" in msg


def test_recipe_cycle_is_refused(cfg):
    cfg["posttrain"]["recipes"]["sft"]["init"] = "sft-dpo"
    cfg["posttrain"]["recipes"]["sft"]["method"] = "sft-dpo"
    assert "recipes start from each other in a cycle" in error_of(cfg)


def test_recipe_method_must_sample_the_starting_checkpoint(cfg):
    cfg["posttrain"]["recipes"]["sft-dpo"]["method"] = (
        "base"  # samples the base, but training starts from sft
    )
    msg = error_of(cfg)
    assert "config key 'posttrain.recipes.sft-dpo.method': method 'base' samples recipe 'none'" in msg
    cfg["posttrain"]["recipes"]["sft-dpo"]["method"] = "nope"
    assert "config key 'posttrain.recipes.sft-dpo.method': 'nope' is not defined under 'methods'" in error_of(
        cfg
    )


def test_sft_posttrain_split_too_small_for_the_steps_names_the_keys(cfg):
    cfg["posttrain"]["recipes"]["sft"]["steps"] = 100  # 100 x 8 examples > 4 epochs x (16 x 2 tasks)
    msg = error_of(cfg)
    assert "config key 'splits.posttrain': posttrain split too small for recipe 'sft'" in msg
    assert "posttrain.recipes.sft.steps x batch_size = 100 x 8 = 800" in msg
    cfg["posttrain"]["recipes"]["sft"]["steps"] = 4
    cfg["splits"]["posttrain"] = 0
    assert "config key 'splits.posttrain': posttrain split too small for recipe 'sft': 0" in error_of(cfg)


def test_needed_adapters_follow_the_chain(cfg):
    assert rx.needed_adapters(cfg, cells(cfg)) == [
        ("smollm2-135m", "rft"),
        ("smollm2-135m", "sft"),
        ("smollm2-135m", "sft-dpo"),
    ]
    only_dpo = [c for c in cells(cfg) if c.method == "sft-dpo"]
    assert rx.needed_adapters(cfg, only_dpo) == [("smollm2-135m", "sft"), ("smollm2-135m", "sft-dpo")]
    assert rx.checkpoint_manifest("R", "m", "none") == "R/models/m/manifest.json"
    assert rx.checkpoint_manifest("R", "m", "sft") == "R/posttrain/m/sft/manifest.json"
    recipes = cfg["posttrain"]["recipes"]
    assert rx.start_manifest("R", "m", recipes["sft-dpo"]) == "R/posttrain/m/sft/manifest.json"
    assert rx.start_manifest("R", "m", recipes["sft"]) == "R/models/m/manifest.json"
    assert rx.sample_files("R", "m", recipes["sft"], ["a"], "samples") == []
    assert rx.sample_files("R", "m", recipes["sft-dpo"], ["a"], "grades") == [
        "R/cells/m/sft/a/posttrain/grades.parquet"
    ]


# ------------------------------------------------------------------ training data


def posttrain_table(task="add1", n=12):
    return build_split(task, TaskSpec.from_config(ADD1), "posttrain", {**SIZES, "posttrain": n}, 0)


def samples_and_grades(split="posttrain"):
    """Two prompts x 4 samples: p0 has 2 correct (one repeated text) and 2 wrong (one ungradable by
    timeout); p1 has no correct sample; graded as the grade rule would."""
    rows = [
        # prompt, sample, completion, status, correct
        ("add1-p0", 0, " 7", "ok", True),
        ("add1-p0", 1, " 6", "ok", False),
        ("add1-p0", 2, " 7", "ok", True),
        ("add1-p0", 3, " 8", "timeout", False),
        ("add1-p1", 0, " 1", "ok", False),
        ("add1-p1", 1, " x", "no_answer", False),
        ("add1-p1", 2, " 1", "ok", False),
        ("add1-p1", 3, " 2", "ok", False),
    ]
    common = {"model": "m", "method": "base", "task": "add1", "split": split}
    samples = pl.DataFrame(
        [
            {
                **common,
                "prompt_id": p,
                "sample_idx": i,
                "prompt": f"Q: {p}?\nA:",
                "completion": c,
                "n_tokens": 2,
                "finish_reason": "stop",
                "sum_logprob": -1.0,
                "mean_logprob": -0.5,
                "mean_entropy": 1.0,
                "self_certainty": 2.0,
                "seed": i,
            }
            for p, i, c, _, _ in rows
        ]
    )
    grades = pl.DataFrame(
        [
            {**common, "prompt_id": p, "sample_idx": i, "answer": c.strip(), "status": s, "correct": ok}
            for p, i, c, s, ok in rows
        ]
    )
    return conform(samples, "samples"), conform(grades, "grades")


def test_target_matches_what_the_sampler_stops_at():
    assert target("7", "fewshot", EOS) == " 7\n"  # like the exemplars: 'A: 7\n'
    assert target(" 7", "fewshot", EOS) == " 7\n"  # a sample already carries its space
    assert target("7", "chat", EOS) == f"7{EOS}"
    with pytest.raises(PosttrainDataError, match="needs a tokenizer with an EOS token"):
        target("7", "chat", None)


def test_sft_examples_are_the_gold_answers_of_the_posttrain_split():
    tasks = posttrain_table()
    prompts = [f"Q: {q}\nA:" for q in tasks["question"]]
    data = sft_examples(tasks, prompts, "fewshot", EOS, model="m", recipe="sft")
    assert conform(data, POSTTRAIN_DATA).equals(data)
    assert data["prompt_id"].to_list() == tasks["prompt_id"].to_list()
    assert data["completion"].to_list() == [f" {g}\n" for g in tasks["gold"]]
    assert data["rejected"].null_count() == data.height
    validation = build_split("add1", TaskSpec.from_config(ADD1), "validation", SIZES, 0)
    with pytest.raises(PosttrainDataError, match=r"split\(s\) \['validation'\]; post-training learns"):
        sft_examples(validation, prompts[:4], "fewshot", EOS, model="m", recipe="sft")


def test_rft_keeps_only_correct_samples_once_each():
    samples, grades = samples_and_grades()
    data = rft_examples(samples, grades, "fewshot", EOS, model="m", recipe="rft")
    assert data.select("prompt_id", "sample_idx", "completion").rows() == [("add1-p0", 0, " 7\n")]
    assert data["prompt"].to_list() == ["Q: add1-p0?\nA:"]  # the prompt the model was sampled with
    wrong = grades.with_columns(correct=pl.lit(True))  # a grade says correct: the sample is kept
    assert rft_examples(samples, wrong, "fewshot", EOS, model="m", recipe="rft").height == 6


def test_rft_and_dpo_refuse_samples_of_other_splits():
    samples, grades = samples_and_grades("test")
    with pytest.raises(PosttrainDataError, match=r"rft samples: rows from split\(s\) \['test'\]"):
        rft_examples(samples, grades, "fewshot", EOS, model="m", recipe="rft")
    with pytest.raises(PosttrainDataError, match=r"dpo samples: rows from split\(s\) \['test'\]"):
        dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=2, model="m", recipe="dpo")


def test_dpo_pairs_come_from_the_same_prompt():
    samples, grades = samples_and_grades()
    data = dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=4, model="m", recipe="dpo")
    assert conform(data, POSTTRAIN_DATA).equals(data)
    # p0: distinct correct [' 7'] x distinct incorrect [' 6'] (the timeout is left out); p1: no correct one
    assert data.select("prompt_id", "completion", "sample_idx", "rejected", "rejected_sample_idx").rows() == [
        ("add1-p0", " 7\n", 0, " 6\n", 1)
    ]
    keys = zip(grades["prompt_id"], grades["sample_idx"], strict=True)
    correct = dict(zip(keys, grades["correct"], strict=True))
    for r in data.iter_rows(named=True):
        assert (
            correct[(r["prompt_id"], r["sample_idx"])]
            and not correct[(r["prompt_id"], r["rejected_sample_idx"])]
        )


def test_dpo_pairs_cycle_up_to_the_cap():
    samples, grades = samples_and_grades()
    # make every p1 sample but the first correct: C = [' x', ' 1'(idx 2)...] distinct texts
    flip = (pl.col("prompt_id") == "add1-p1") & (pl.col("sample_idx") > 0)
    grades = grades.with_columns(correct=pl.when(flip).then(True).otherwise(pl.col("correct")))
    grades = grades.with_columns(status=pl.lit("ok"))
    data = dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=2, model="m", recipe="dpo")
    p1 = data.filter(pl.col("prompt_id") == "add1-p1")
    # p1: correct distinct texts ' x'(1), ' 1'(2), ' 2'(3); incorrect ' 1'(0): 2 pairs (the cap)
    assert p1.select("sample_idx", "rejected_sample_idx").rows() == [(1, 0), (2, 0)]
    one = dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=1, model="m", recipe="dpo")
    assert one.group_by("prompt_id").len()["len"].max() == 1


def test_recipe_dataset_too_small_names_the_split_and_the_steps(tmp_path, tiny_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint["path"])
    method = complete_block(
        "methods.*", {"prompt_format": "fewshot", "temperature": 1.0, "max_new_tokens": 4}
    )
    samples, grades = samples_and_grades()
    recipe = complete_block(
        "posttrain.recipes.*", {"kind": "rft", "method": "base", "steps": 2, "batch_size": 4}
    )
    with pytest.raises(PosttrainSizeError) as err:
        recipe_dataset(
            tasks=[posttrain_table()],
            samples=[samples],
            grades=[grades],
            recipe_cfg=recipe,
            method=method,
            task_cfgs={"add1": ADD1},
            sizes=SIZES,
            split_seed=0,
            tokenizer=tok,
            model="m",
            recipe="rft",
        )
    msg = str(err.value)
    assert "posttrain split too small for recipe 'rft': 1 training examples" in msg
    assert "splits.posttrain" in msg and "posttrain.recipes.rft.steps x batch_size = 2 x 4" in msg


def test_recipe_dataset_formats_sft_prompts_like_the_sampler(tiny_checkpoint):
    from transformers import AutoTokenizer

    from bongain.sampling.prompts import format_prompt
    from bongain.tasks.splits import fewshot_exemplars

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint["path"])
    method = complete_block(
        "methods.*", {"prompt_format": "fewshot", "fewshot_k": 2, "temperature": 1.0, "max_new_tokens": 4}
    )
    recipe = complete_block(
        "posttrain.recipes.*", {"kind": "sft", "method": "base", "steps": 2, "batch_size": 4}
    )
    tasks = posttrain_table()
    data = recipe_dataset(
        tasks=[tasks],
        samples=[],
        grades=[],
        recipe_cfg=recipe,
        method=method,
        task_cfgs={"add1": ADD1},
        sizes=SIZES,
        split_seed=0,
        tokenizer=tok,
        model="m",
        recipe="sft",
    )
    shots = fewshot_exemplars("add1", TaskSpec.from_config(ADD1), SIZES["exemplars"], 0)
    assert data["prompt"][0] == format_prompt(tasks["question"][0], method, shots, tok)
    assert data["prompt"][0].count("Q: ") == 3  # two exemplars, then the question


# ------------------------------------------------------------------ training and merging


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """Manifest of a tiny random Llama checkpoint (float32) with a byte-level tokenizer."""
    from bongain.sampling.models import convert_gguf

    root = tmp_path_factory.mktemp("tiny")
    write_tiny_gguf(root / "tiny.gguf")
    path = convert_gguf(root / "tiny.gguf", root / "hf", "float32")
    return {"path": str(path), "dtype": "float32", "trust_remote_code": False}


def sft_data(n=16):
    tasks = posttrain_table(n=n)
    prompts = [f"Q: {q}\nA:" for q in tasks["question"]]
    return sft_examples(tasks, prompts, "fewshot", EOS, model="tiny", recipe="sft")


def recipe(kind="sft", **kw):
    return complete_block(
        "posttrain.recipes.*",
        {"kind": kind, "method": "base", "steps": 4, "batch_size": 4, "learning_rate": 0.01, "seed": 5, **kw},
    )


LORA = complete_block("posttrain.lora", {"r": 4, "alpha": 8})


@pytest.fixture(scope="module")
def trained(tiny_checkpoint, tmp_path_factory):
    """A tiny sft adapter trained for 4 steps, twice with the same seed, and merged."""
    root = tmp_path_factory.mktemp("trained")
    logs = []
    for run in ("a", "b"):
        logs.append(
            train_adapter(
                start_path=tiny_checkpoint["path"],
                data=sft_data(),
                recipe="sft",
                recipe_cfg=recipe(),
                lora=LORA,
                threads=1,
                adapter_dir=root / run / "adapter",
                model="tiny",
            )
        )
    manifest = merge_adapter(tiny_checkpoint, root / "a" / "adapter", root / "a")
    return root, logs, manifest


def test_training_log_has_a_row_per_step(trained):
    root, (log, _), _ = trained
    assert conform(log, POSTTRAIN_LOG).equals(log)
    assert log["step"].to_list() == [1, 2, 3, 4]
    assert log["examples_seen"].to_list() == [4, 8, 12, 16]
    assert set(log["n_examples"]) == {16} and set(log["seed"]) == {5} and set(log["threads"]) == {1}
    assert log["loss"].is_finite().all() and (log["wall_s"].diff().drop_nulls() > 0).all()
    assert log["loss"][-1] < log["loss"][0]  # lr 0.01 on 16 examples: it learns something
    assert sorted(p.name for p in (root / "a").iterdir() if p.name.startswith(".")) == []  # no leftovers
    assert (root / "a" / "adapter" / "adapter_config.json").is_file()


def test_same_seed_same_threads_gives_identical_adapters(trained):
    from safetensors.torch import load_file

    root, (log_a, log_b), _ = trained
    assert log_a.drop("wall_s").equals(log_b.drop("wall_s"))
    a = load_file(root / "a" / "adapter" / "adapter_model.safetensors")
    b = load_file(root / "b" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    assert all((a[k] == b[k]).all() for k in a)


def test_merged_checkpoint_equals_base_plus_adapter(trained, tiny_checkpoint):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from bongain.sampling.models import load_causal_lm, load_manifest

    root, _, manifest = trained
    assert load_manifest(root / "a" / "manifest.json") == manifest
    assert manifest["dtype"] == "float32" and Path(manifest["path"]).name == "hf"
    merged, tok = load_causal_lm(manifest)  # what every transformers sample job does
    base = AutoModelForCausalLM.from_pretrained(tiny_checkpoint["path"], dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(root / "a" / "adapter")).eval()
    ids = tok("Q: What is 3 + 4?\nA: 7\n", return_tensors="pt")
    with torch.no_grad():
        got = merged(**ids).logits
        want = with_adapter(**ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_checkpoint["path"], dtype=torch.float32)(
            **ids
        ).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - plain).abs().max() > 1e-3  # the adapter changed the model


def test_sample_from_the_merged_checkpoint(trained):
    from bongain.sampling.backends import load_backend
    from bongain.sampling.loop import SamplingParams

    _, _, manifest = trained
    backend = load_backend(
        manifest, complete_block("models.*", {"source": {"kind": "local", "path": "x"}}), 0
    )
    prompts = ["Q: What is 3 + 4?\nA:", "Q: What is 2 + 2?\nA:"]
    ids = [backend.tokenizer(p).input_ids for p in prompts]
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=4, stop=("\n",), seed=1)
    out = backend.sample(prompts, ids, ["a", "b"], params, batch_prompts=2)
    assert len(out) == 6 and all(1 <= c.n_tokens <= 4 for c in out)
    again = backend.sample(prompts, ids, ["a", "b"], params, batch_prompts=2)
    assert [c.token_ids for c in out] == [c.token_ids for c in again]


def test_dpo_adapter_trains_on_pairs_and_chains_on_a_merged_checkpoint(trained, tmp_path):
    _, _, sft_manifest = trained
    samples, grades = samples_and_grades()
    flip = (pl.col("prompt_id") == "add1-p1") & (pl.col("sample_idx") > 0)
    grades = grades.with_columns(correct=pl.when(flip).then(True).otherwise(pl.col("correct")))
    pairs = dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=4, model="tiny", recipe="dpo")
    assert pairs.height == 4
    log = train_adapter(
        start_path=sft_manifest["path"],  # dpo on top of sft: starts from the merged sft checkpoint
        data=pairs,
        recipe="dpo",
        recipe_cfg=recipe("dpo", steps=2, batch_size=2, init="sft"),
        lora=LORA,
        threads=1,
        adapter_dir=tmp_path / "adapter",
        model="tiny",
    )
    assert log["step"].to_list() == [1, 2]
    assert log["loss"][0] == pytest.approx(0.6931, abs=1e-3)  # log 2: policy == reference at step 1
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_nan_loss_stops_training_names_the_key_and_writes_no_adapter(tiny_checkpoint, tmp_path):
    with pytest.raises(TrainingDiverged) as err:
        train_adapter(
            start_path=tiny_checkpoint["path"],
            data=sft_data(),
            recipe="sft",
            recipe_cfg=recipe(learning_rate=1e30),
            lora=LORA,
            threads=1,
            adapter_dir=tmp_path / "adapter",
            model="tiny",
        )
    msg = str(err.value)
    assert "recipe 'sft' on model 'tiny' diverged" in msg and "posttrain.recipes.sft.learning_rate" in msg
    assert "nan" in msg.lower()
    assert list(tmp_path.iterdir()) == []  # no adapter, no temporary folder


def test_training_refuses_too_few_examples(tiny_checkpoint, tmp_path):
    with pytest.raises(PosttrainSizeError, match=r"posttrain\.recipes\.sft\.steps x batch_size = 40 x 4"):
        train_adapter(
            start_path=tiny_checkpoint["path"],
            data=sft_data(8),
            recipe="sft",
            recipe_cfg=recipe(steps=40),
            lora=LORA,
            threads=1,
            adapter_dir=tmp_path / "adapter",
            model="tiny",
        )
    assert list(tmp_path.iterdir()) == []


def test_loss_from_the_labelled_positions_equals_the_full_output_layer(tiny_checkpoint, monkeypatch):
    """TRL's fused head under labelled_positions_only projects only the labelled positions; the loss, the
    per-token log-probabilities and the gradients equal those of the full (batch x length x vocab) logits
    of the model's own forward, up to float rounding."""
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from bongain.posttrain.train import labelled_positions_only

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint["path"], dtype=torch.float32)
    vocab = model.get_output_embeddings().weight.shape[0]
    ids = torch.randint(3, vocab, (3, 14))
    mask = torch.ones_like(ids)
    mask[2, 11:] = 0  # a shorter (right-padded) row, as TRL pads
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :9] = -100  # the prompt: no loss
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    target = labels[:, 1:]
    scored = target != -100
    full_lp = torch.log_softmax(logits, -1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    full_lp = full_lp * scored
    full_loss = -full_lp.sum() / scored.sum()
    full_loss.backward()
    full_grad = model.model.layers[0].mlp.down_proj.weight.grad.clone()
    model.zero_grad()

    add_fused_lm_head(model, outputs=("log_probs", "entropy"))
    rows = []
    function = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return function.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    with labelled_positions_only():
        lean = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    assert rows == [3 * 13, int(scored.sum())]  # TRL's CPU path: every position; ours: the labelled ones
    for got in (out, lean):
        torch.testing.assert_close(got.loss, full_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.log_probs, full_lp, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lean.entropy, out.entropy, rtol=1e-5, atol=1e-6)
    lean.loss.backward()
    torch.testing.assert_close(
        model.model.layers[0].mlp.down_proj.weight.grad, full_grad, rtol=1e-4, atol=1e-7
    )


@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_training_on_labelled_positions_has_the_losses_of_all_positions(tiny_checkpoint, tmp_path, kind):
    """train_adapter as the pipeline runs it against TRL's own CPU path (every position scored): the same
    losses and adapter weights up to float rounding."""
    from safetensors.torch import load_file

    if kind == "sft":
        data, cfg = sft_data(), recipe()
    else:
        samples, grades = samples_and_grades()
        flip = (pl.col("prompt_id") == "add1-p1") & (pl.col("sample_idx") > 0)
        grades = grades.with_columns(correct=pl.when(flip).then(True).otherwise(pl.col("correct")))
        data = dpo_pairs(samples, grades, "fewshot", EOS, max_pairs_per_prompt=4, model="tiny", recipe="dpo")
        cfg = recipe("dpo", steps=2, batch_size=2)
    logs, weights = [], []
    for all_positions in (True, False):
        out = tmp_path / str(all_positions)
        logs.append(
            train_adapter(
                start_path=tiny_checkpoint["path"],
                data=data,
                recipe=kind,
                recipe_cfg=cfg,
                lora=LORA,
                threads=1,
                adapter_dir=out / "adapter",
                model="tiny",
                all_positions=all_positions,
            )
        )
        weights.append(load_file(out / "adapter" / "adapter_model.safetensors"))
    full, lean = logs
    assert lean["loss"].to_list() == pytest.approx(full["loss"].to_list(), rel=1e-5, abs=1e-6)
    assert weights[0].keys() == weights[1].keys()
    for k in weights[0]:
        assert (weights[0][k] - weights[1][k]).abs().max() < 1e-5


def test_bfloat16_training_is_reproducible_and_learns(tiny_checkpoint, tmp_path):
    """posttrain.dtype bfloat16: bf16 base weights, float32 adapter; same seed twice, identical adapters."""
    from safetensors.torch import load_file

    logs, weights = [], []
    for run in ("a", "b"):
        logs.append(
            train_adapter(
                start_path=tiny_checkpoint["path"],
                data=sft_data(),
                recipe="sft",
                recipe_cfg=recipe(),
                lora=LORA,
                threads=1,
                adapter_dir=tmp_path / run / "adapter",
                model="tiny",
                dtype="bfloat16",
            )
        )
        weights.append(load_file(tmp_path / run / "adapter" / "adapter_model.safetensors"))
    assert logs[0].drop("wall_s").equals(logs[1].drop("wall_s"))
    assert logs[0]["loss"][-1] < logs[0]["loss"][0]
    assert {str(w.dtype) for w in weights[0].values()} == {"torch.float32"}
    assert all(torch_equal(weights[0][k], weights[1][k]) for k in weights[0])


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


# ------------------------------------------------------------------ the DAG


def test_dry_run_lists_the_posttrain_jobs(repo):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_workflow import job_counts, smk

    res = smk(
        repo, "-n", "--forceall", "--cores", "2", "--configfile", str(repo / "config" / "posttrain-test.yaml")
    )
    out = res.stdout + res.stderr
    counts = job_counts(out)
    cfg = load_config(repo / "config" / "posttrain-test.yaml")
    n_cells = len(cells(cfg))
    assert counts["posttrain_data"] == counts["posttrain_train"] == counts["posttrain_merge"] == 3
    # one sample_cell job per cell for its three splits, one sample job per posttrain split of the two
    # methods rft and sft-dpo learn from
    assert counts["sample_cell"] == n_cells
    assert counts["sample"] == 2 * len(cfg["tasks"])
    assert counts["grade"] == 3 * n_cells + 2 * len(cfg["tasks"])
    assert counts["task_split"] == 4 * len(cfg["tasks"])
    for path in (
        "results/posttrain-test/posttrain/smollm2-135m/sft-dpo/manifest.json",
        # dpo's on-policy data (sampled from the sft checkpoint), rft's (from the base)
        "results/posttrain-test/cells/smollm2-135m/sft/add1/posttrain/samples.parquet",
        "results/posttrain-test/cells/smollm2-135m/base/deccmp/posttrain/grades.parquet",
    ):
        assert path in out


def test_default_config_dag_trains_one_adapter_per_model_and_recipe(repo):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_workflow import job_counts, smk

    counts = job_counts((lambda r: r.stdout + r.stderr)(smk(repo, "-n", "--forceall", "--cores", "2")))
    default = load_config(repo / "config" / "config.yaml")
    n_adapters = len(default["models"]) * len(default["posttrain"]["recipes"])
    assert counts["posttrain_data"] == counts["posttrain_train"] == counts["posttrain_merge"] == n_adapters


def test_bad_recipe_fails_the_dag_before_any_job(repo, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_workflow import smk

    text = (repo / "config" / "posttrain-test.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("recipe: rft,", "recipe: rtf,"))
    res = smk(repo, "-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert res.returncode != 0
    assert "config key 'methods.rft.recipe': unknown recipe 'rtf'" in res.stdout + res.stderr


# ------------------------------------------------------------------ real model, real Snakemake


@pytest.mark.slow
def test_real_sft_end_to_end_through_snakemake(repo, tmp_path):
    """SmolLM2 post-trained with sft for 2 steps through the real workflow, then sampled and graded:
    only the posttrain split is learned from, and the sft method samples the merged checkpoint."""
    import yaml

    sys.path.insert(0, str(Path(__file__).parent))
    from bongain.io import read_parquet
    from test_workflow import job_counts, smk

    cfg = yaml.safe_load((repo / "config" / "posttrain-test.yaml").read_text())
    cfg["results_dir"] = "results"
    cfg["methods"] = {m: cfg["methods"][m] for m in ("base", "sft")}
    cfg["posttrain"]["recipes"] = {"sft": {**cfg["posttrain"]["recipes"]["sft"], "steps": 2}}
    config = tmp_path / "sft.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    targets = [
        f"results/cells/smollm2-135m/{m}/{t}/validation/grades.parquet"
        for m in ("base", "sft")
        for t in cfg["tasks"]
    ]
    res = smk(repo, "--cores", "2", *targets, "--configfile", str(config), workdir=work)
    counts = job_counts(res.stdout + res.stderr)
    assert counts["posttrain_data"] == counts["posttrain_train"] == counts["posttrain_merge"] == 1
    results = work / "results"
    pt = results / "posttrain" / "smollm2-135m" / "sft"
    log = read_parquet(pt / "train_log.parquet", "posttrain_log")
    assert log["step"].to_list() == [1, 2] and log["loss"].is_finite().all()
    data = read_parquet(pt / "dataset.parquet", "posttrain_data")
    assert data.height == cfg["splits"]["posttrain"] * len(cfg["tasks"]) == log["n_examples"][0]
    for task in cfg["tasks"]:
        posttrain_ids = set(
            read_parquet(results / "tasks" / task / "posttrain.parquet", "tasks")["prompt_id"]
        )
        validation_ids = set(
            read_parquet(results / "tasks" / task / "validation.parquet", "tasks")["prompt_id"]
        )
        assert set(data.filter(pl.col("task") == task)["prompt_id"]) == posttrain_ids
        assert not posttrain_ids & validation_ids
    manifest = (pt / "manifest.json").read_text()
    assert str((pt / "hf").resolve()) in manifest
    base = read_parquet(results / "cells/smollm2-135m/base/add1/validation/samples.parquet", "samples")
    sft = read_parquet(results / "cells/smollm2-135m/sft/add1/validation/samples.parquet", "samples")
    assert base["prompt"].to_list() == sft["prompt"].to_list() and base["seed"].equals(sft["seed"])
    assert not base["sum_logprob"].equals(sft["sum_logprob"])  # same prompts and seeds, another checkpoint


def test_rft_and_dpo_need_a_posttrain_split_that_could_feed_their_steps(cfg):
    cfg["posttrain"]["recipes"]["sft"]["steps"] = 2
    cfg["splits"]["posttrain"] = 2  # 4 prompts: sft 4 examples, rft <= 16, dpo <= 4 x min(4, n - 1 = 3) = 12
    cfg["posttrain"]["recipes"]["sft"]["batch_size"] = 4
    cfg["posttrain"]["recipes"]["rft"]["steps"] = 20  # 80 > 4 epochs x 16
    cfg["posttrain"]["recipes"]["sft-dpo"]["steps"] = 60  # 120 > 8 epochs x 12
    msg = error_of(cfg)
    assert "recipe 'rft': 16 rft examples at most (posttrain prompts x sampling.n)" in msg
    assert "recipe 'sft-dpo': 12 dpo pairs at most" in msg
    assert "recipe 'sft'" not in msg
