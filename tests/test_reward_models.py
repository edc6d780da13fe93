"""Reward models behind the Verifier protocol: HF paths run for real (tiny random Llama heads on CPU, a
tokenizer built in code); vLLM pooling paths through the fake (tests/fakes/vllm_fake.py) only for what
vLLM's CPU engine does not show here: tensor parallelism, Qwen2.5-Math-PRM's STEP pooling (no such
checkpoint offline) and the input-length limit without another engine start. vllm_classify and vllm_prm
on the real engine: tests/test_vllm_engine.py."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import polars as pl
import pytest
import torch

from bongain.config import ConfigError, complete_block
from bongain.scoring.hf_rm import score_sequences
from bongain.scoring.offline import OfflineLogisticVerifier, train_offline_verifier
from bongain.scoring.registry import SCORERS, make_scorer, score_gpus, score_inputs
from bongain.scoring.rm_inputs import (
    PRM_SYSTEM_PROMPT,
    aggregate_steps,
    batches_by_length,
    encode_conversations,
    prm_conversation,
    rm_conversation,
    split_steps,
)
from bongain.scoring.vllm_rm import step_probabilities
from fakes import vllm_fake
from fakes.tiny_tokenizer import build_tokenizer

QUESTIONS = {"t-0": "what is 3 + 4 ?", "t-1": "what is 2 * 5 ?"}
COMPLETIONS = [
    ("t-0", "7"),
    ("t-0", "first add 3 and 4\n\nso the answer is 7"),
    ("t-0", "  8 "),
    ("t-1", "step a\n\nstep b\n\n\n\nso 10 ."),
    ("t-1", "the answer is boxed 10 , so 10"),
    ("t-1", "1"),
    ("t-1", "what is the answer ? it is 3 + 4 = 7 , then 7 * 2"),
]


def samples_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "prompt_id": [p for p, _ in COMPLETIONS],
            "sample_idx": [
                sum(1 for q, _ in COMPLETIONS[:i] if q == p) for i, (p, _) in enumerate(COMPLETIONS)
            ],
            "completion": [c for _, c in COMPLETIONS],
        }
    )


GRADES = pl.DataFrame({"prompt_id": [p for p, _ in COMPLETIONS], "answer": [None] * len(COMPLETIONS)})


def _config(tok, **kw):
    from transformers import LlamaConfig

    base = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def rm_dirs(tmp_path_factory):
    """Tiny random checkpoints: a sequence-classification RM and a 2-label token-classification PRM."""
    from transformers import LlamaForSequenceClassification, LlamaForTokenClassification

    tok = build_tokenizer()
    root = tmp_path_factory.mktemp("rms")
    torch.manual_seed(0)
    seq = LlamaForSequenceClassification(_config(tok, num_labels=1, pad_token_id=tok.pad_token_id))
    seq.save_pretrained(root / "seq")
    tok.save_pretrained(root / "seq")
    prm = LlamaForTokenClassification(_config(tok, num_labels=2, pad_token_id=tok.pad_token_id))
    prm.save_pretrained(root / "prm")
    tok.save_pretrained(root / "prm")
    wide = LlamaForTokenClassification(_config(tok, num_labels=3, pad_token_id=tok.pad_token_id))
    wide.save_pretrained(root / "prm3")
    tok.save_pretrained(root / "prm3")
    # the same files declared as Qwen2.5-Math-PRM's architecture: only the fake reads this folder
    shutil.copytree(root / "prm", root / "qwen-prm")
    cfg = json.loads((root / "qwen-prm" / "config.json").read_text())
    (root / "qwen-prm" / "config.json").write_text(
        json.dumps({**cfg, "architectures": ["Qwen2ForProcessRewardModel"]})
    )
    return root


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", vllm_fake)
    vllm_fake.LLM.instances.clear()
    return vllm_fake


def make_verifier(cfg=None, **kw):
    """The scorer of a partial scorer block (``reward_models.verifier``), completed by the config schema as
    the pipeline does."""
    return make_scorer(complete_block("reward_models.verifier", cfg), **kw)


def hf_cfg(path, **kw):
    return {
        "kind": "hf_sequence_classification",
        "model": str(path),
        "dtype": "float32",
        "device": "cpu",
        **kw,
    }


# ------------------------------------------------------------------------------------------ pure parts


def test_aggregate_steps():
    s = [0.9, 0.5, 0.8]
    assert aggregate_steps(s, "min") == 0.5
    assert aggregate_steps(s, "last") == 0.8
    assert aggregate_steps(s, "prod") == pytest.approx(0.36)
    assert aggregate_steps([0.7], "prod") == aggregate_steps([0.7], "min") == 0.7
    with pytest.raises(ValueError, match="no step scores"):
        aggregate_steps([], "last")
    with pytest.raises(ValueError, match="unknown step aggregation"):
        aggregate_steps(s, "mean")


def test_batches_by_length():
    lengths = [3, 9, 1, 9, 5, 2, 7]
    batches = batches_by_length(lengths, 3)
    assert batches == [[1, 3, 6], [4, 0, 5], [2]]
    assert sorted(i for b in batches for i in b) == list(range(7))


def test_steps_and_conversations():
    assert split_steps("a\n\nb\n\n\n\nc ") == ["a", "b", "c"]
    assert split_steps("  ") == [""]
    conv = prm_conversation("q", "a\n\nb", system_prompt="sys", step_tag="<extra_0>", separator="\n\n")
    assert conv[-1] == {"role": "assistant", "content": "a<extra_0>b<extra_0>"}
    assert [m["role"] for m in conv] == ["system", "user", "assistant"]
    assert rm_conversation("q", " 7 \n")[-1]["content"] == "7"


def test_encoding_has_one_bos_and_ends_at_end_of_turn():
    tok = build_tokenizer()
    ids = encode_conversations(tok, [rm_conversation(q, "7") for q in QUESTIONS.values()])
    eot = tok.convert_tokens_to_ids("<|eot|>")
    for x in ids:
        assert x[0] == tok.bos_token_id and x[1] != tok.bos_token_id
        assert x[-1] == eot


# ---------------------------------------------------------------------------------------- HF, for real


def test_hf_sequence_rm_batching_is_padding_invariant(rm_dirs):
    from transformers import AutoModelForSequenceClassification

    rm = make_verifier(hf_cfg(rm_dirs / "seq", batch_size=3), questions=QUESTIONS)
    assert rm.name == f"hf_sequence_classification:{rm_dirs / 'seq'}"
    s = samples_frame()
    batched = rm.score(s, GRADES)
    seqs = rm.encode(s)
    assert len({len(x) for x in seqs}) > 3  # real padding happens
    # reference: each sequence alone, no padding at all
    model = AutoModelForSequenceClassification.from_pretrained(rm_dirs / "seq", dtype=torch.float32).eval()
    with torch.inference_mode():
        alone = np.array([float(model(input_ids=torch.tensor([x])).logits[0, 0]) for x in seqs])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    pad = model.config.pad_token_id
    for side in ("left", "right"):
        for bs in (1, 2, 7):
            got = score_sequences(model, seqs, pad_id=pad, batch_size=bs, padding_side=side)
            np.testing.assert_allclose(got, alone, atol=1e-5, err_msg=f"{side} padding, batch {bs}")
    # scores follow the rows: a permuted frame gives the permuted scores
    perm = np.array([4, 0, 6, 2, 1, 5, 3])
    np.testing.assert_allclose(rm.score(s[perm], GRADES), batched[perm], atol=1e-5)
    assert np.ptp(batched) > 0


def test_hf_pad_token_handling(rm_dirs):
    s = samples_frame()
    rm = make_verifier(hf_cfg(rm_dirs / "seq", batch_size=4), questions=QUESTIONS)
    ref = rm.score(s, GRADES)
    # no pad anywhere: batching must refuse, not guess
    rm.tokenizer = build_tokenizer(pad=False)
    rm.model.config.pad_token_id = None
    with pytest.raises(ValueError, match="no pad token"):
        rm.score(s, GRADES)
    # pad = end-of-turn would read the logit before the final template token: refused
    rm.pad_token = "<|eot|>"
    with pytest.raises(ValueError, match="end-of-turn"):
        rm.score(s, GRADES)
    rm.pad_token = "<pad>"
    np.testing.assert_allclose(rm.score(s, GRADES), ref, atol=1e-5)
    assert rm.model.config.pad_token_id == 0


def test_hf_prm_step_scores(rm_dirs):
    from transformers import AutoModelForTokenClassification

    cfg = {"kind": "hf_prm", "model": str(rm_dirs / "prm"), "dtype": "float32", "device": "cpu"}
    s = samples_frame()
    rm = make_verifier({**cfg, "batch_size": 3, "aggregation": "min"}, questions=QUESTIONS)
    steps = rm.step_scores(s)
    assert [len(x) for x in steps] == [len(split_steps(c)) for _, c in COMPLETIONS]
    model = AutoModelForTokenClassification.from_pretrained(rm_dirs / "prm", dtype=torch.float32).eval()
    tok = rm.tokenizer
    tag = tok.convert_tokens_to_ids("<extra_0>")
    for (pid, comp), got in zip(COMPLETIONS, steps, strict=True):
        conv = prm_conversation(
            QUESTIONS[pid], comp, system_prompt=rm.system_prompt, step_tag="<extra_0>", separator="\n\n"
        )
        (ids,) = encode_conversations(tok, [conv])
        with torch.inference_mode():
            p = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)[:, 1]
        np.testing.assert_allclose(got, p[torch.tensor(ids) == tag].numpy(), atol=1e-5)
    for how in ("min", "last", "prod"):
        r = make_verifier({**cfg, "aggregation": how, "batch_size": 1}, questions=QUESTIONS).score(s, GRADES)
        np.testing.assert_allclose(r, [aggregate_steps(x, how) for x in steps], atol=1e-5)


def test_hf_prm_refuses_a_model_without_a_two_class_head(rm_dirs, tmp_path):
    """A remote-code PRM loaded without trust_remote_code is its bare base model: refused, not scored."""
    bare = tmp_path / "remote-prm"
    shutil.copytree(rm_dirs / "prm", bare)
    cfg = json.loads((bare / "config.json").read_text())
    # an architecture transformers does not ship: AutoModel falls back to the built-in base LlamaModel
    (bare / "config.json").write_text(json.dumps({**cfg, "architectures": ["LlamaForProcessRewardModel"]}))
    base = {"kind": "hf_prm", "dtype": "float32", "device": "cpu"}
    with pytest.raises(ValueError, match=r"<name>.model.*LlamaModel.*hidden states.*trust_remote_code"):
        make_verifier({**base, "model": str(bare)}, questions=QUESTIONS)
    with pytest.raises(ValueError, match="3 values per token"):
        make_verifier({**base, "model": str(rm_dirs / "prm3")}, questions=QUESTIONS)
    assert make_verifier({**base, "model": str(rm_dirs / "prm")}, questions=QUESTIONS)  # 2 labels: fine


# --------------------------------------------------------------------------------- vLLM, through fake


def test_vllm_classify_returns_raw_logits(fake_vllm, rm_dirs):
    cfg = {"kind": "vllm_classify", "model": str(rm_dirs / "seq"), "tensor_parallel_size": 2}
    rm = make_verifier(cfg, questions=QUESTIONS)
    (llm,) = vllm_fake.LLM.instances
    assert llm.runner == "pooling" and llm.tensor_parallel_size == 2
    s = samples_frame()
    got = rm.score(s, GRADES)
    ((name, call),) = llm.calls
    assert name == "classify" and call["pooling_params"].use_activation is False
    ids = encode_conversations(build_tokenizer(), [rm_conversation(QUESTIONS[p], c) for p, c in COMPLETIONS])
    assert [pr["prompt_token_ids"] for pr in call["prompts"]] == ids  # one BOS each
    np.testing.assert_allclose(got, [vllm_fake.fake_logit(x) for x in ids])
    assert got.min() < 0 or got.max() > 1  # not squashed by the default sigmoid
    # the same inputs through the HF path: identical token ids
    hf = make_verifier(hf_cfg(rm_dirs / "seq"), questions=QUESTIONS)
    assert hf.encode(s) == ids


def scored_samples() -> pl.DataFrame:
    return samples_frame().with_columns(
        model=pl.lit("m"), method=pl.lit("chat"), task=pl.lit("add1"), split=pl.lit("test")
    )


@pytest.mark.parametrize("kind", ["vllm_classify", "vllm_prm", "hf_sequence_classification", "hf_prm"])
def test_too_long_inputs_get_a_status_not_a_crash(fake_vllm, rm_dirs, kind):
    """Samples whose RM input is over the limit are not sent to the RM (the fake vLLM raises like vLLM
    on an over-long prompt); they get score_status too_long and a reward below every scored one."""
    from bongain.io import conform
    from bongain.scoring.registry import score_split

    folder = rm_dirs / ("prm" if kind.endswith("prm") else "seq")
    cfg = complete_block("reward_models.verifier", {**hf_cfg(folder), "kind": kind})
    s = scored_samples()
    tasks = pl.DataFrame({"prompt_id": list(QUESTIONS), "question": list(QUESTIONS.values())})
    full = score_split(cfg, s, GRADES, tasks=tasks)
    assert full["score_status"].to_list() == ["ok"] * s.height
    rm = make_scorer(cfg, questions=QUESTIONS)
    lengths = rm.input_lengths(s)
    limit = sorted(lengths)[len(lengths) // 2]
    long = np.asarray(lengths) > limit
    if kind.startswith("vllm"):  # without the check, one long input kills the job
        with pytest.raises(ValueError, match="longer than the maximum model length"):
            make_scorer({**cfg, "max_model_len": limit}, questions=QUESTIONS).score(s, GRADES)
    out = conform(score_split({**cfg, "max_model_len": limit}, s, GRADES, tasks=tasks), "scores")
    assert out["score_status"].to_list() == ["too_long" if x else "ok" for x in long]
    ok = out.filter(pl.col("score_status") == "ok")["reward"].to_numpy()
    np.testing.assert_allclose(ok, full["reward"].to_numpy()[~long], atol=1e-5)  # scored as before
    assert (out.filter(pl.col("score_status") == "too_long")["reward"] == ok.min() - 1.0).all()


@pytest.mark.parametrize("arch_dir", ["qwen-prm"])  # STEP pooling (ALL pooling: tests/test_vllm_engine.py)
def test_vllm_prm_step_scores(fake_vllm, rm_dirs, arch_dir):
    cfg = {"kind": "vllm_prm", "model": str(rm_dirs / arch_dir), "aggregation": "prod"}
    rm = make_verifier(cfg, questions=QUESTIONS)
    s = samples_frame()
    steps = rm.step_scores(s)
    tok = build_tokenizer()
    tag = tok.convert_tokens_to_ids("<extra_0>")
    for (pid, comp), got in zip(COMPLETIONS, steps, strict=True):
        conv = prm_conversation(
            QUESTIONS[pid], comp, system_prompt=rm.system_prompt, step_tag="<extra_0>", separator="\n\n"
        )
        (ids,) = encode_conversations(tok, [conv])
        z = vllm_fake.fake_token_logits(ids)
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        np.testing.assert_allclose(got, p[np.asarray(ids) == tag, 1], atol=1e-6)
        assert len(got) == len(split_steps(comp))
    np.testing.assert_allclose(rm.score(s, GRADES), [aggregate_steps(x, "prod") for x in steps])


def test_step_probabilities_softmaxes_raw_rows():
    ids = [1, 8, 5, 8]
    raw = np.array([[0.0, 1.0], [2.0, -1.0]])
    got = step_probabilities(torch.tensor(raw), ids, 8)
    np.testing.assert_allclose(got, np.exp(raw[:, 1]) / np.exp(raw).sum(-1))
    with pytest.raises(ValueError, match="step tags"):
        step_probabilities(torch.tensor(raw[:1]), ids, 8)


# ------------------------------------------------------------------------------------------- factory


def test_make_verifier_offline_and_errors():
    s = pl.DataFrame(
        {
            "prompt_id": ["p"] * 4,
            "sample_idx": [0, 1, 2, 3],
            "mean_logprob": [-0.1, -2.0, -0.2, -1.5],
            "mean_entropy": [0.1, 1.0, 0.2, 0.9],
            "n_tokens": [2, 3, 2, 4],
        }
    )
    g = pl.DataFrame(
        {
            "prompt_id": ["p"] * 4,
            "sample_idx": [0, 1, 2, 3],
            "answer": ["1", "2", "1", None],
            "correct": [
                True,
                False,
                True,
                False,
            ],
        }
    )
    table = train_offline_verifier(s, g, signals=("mean_logprob", "mean_entropy", "agreement")).to_table()
    for cfg in (None, {}, {"kind": "offline_logistic"}):
        v = make_verifier(cfg, verifier_table=table)
        assert isinstance(v, OfflineLogisticVerifier) and v.name == "offline_logistic"
    with pytest.raises(ValueError, match="verifier table"):
        make_verifier(None)
    with pytest.raises(ValueError, match="question texts"):
        make_verifier({"kind": "hf_prm", "model": "x"})
    with pytest.raises(ConfigError, match=r"config key 'reward_models.verifier.model'"):
        make_verifier({"kind": "vllm_classify"}, questions=QUESTIONS)
    with pytest.raises(ConfigError, match=r"config key 'reward_models.verifier.kind'"):
        make_verifier({"kind": "bogus", "model": "x"}, questions=QUESTIONS)
    # the registry refuses what the schema would, even for a hand-built block
    bad = {**complete_block("reward_models.verifier", {"kind": "hf_prm", "model": "x"}), "kind": "bogus"}
    with pytest.raises(ValueError, match=r"'reward_models.<name>.kind': unknown kind 'bogus'"):
        make_scorer(bad, questions=QUESTIONS)
    no_model = {**complete_block("reward_models.verifier", {"kind": "hf_prm", "model": "x"}), "model": None}
    with pytest.raises(ValueError, match=r"'reward_models.<name>.model': required"):
        make_scorer(no_model, questions=QUESTIONS)


def test_registry_covers_the_schema_kinds_and_prm_default(repo):
    import yaml

    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    rm = schema["$defs"]["reward_model"]["properties"]
    assert schema["properties"]["reward_models"]["additionalProperties"] == {"$ref": "#/$defs/reward_model"}
    assert sorted(SCORERS) == sorted(rm["kind"]["enum"])
    assert rm["prm_system_prompt"]["default"] == PRM_SYSTEM_PROMPT


def test_score_rule_glue():
    from types import SimpleNamespace

    def rm(**kw):
        return complete_block("reward_models.verifier", kw)

    rms = {"verifier": rm(), "prm": rm(kind="hf_prm", model="p")}
    inputs = score_inputs(rms, "res")
    w = SimpleNamespace(model="m", method="x", task="t", split="test", rm="verifier")
    assert inputs(w) == {
        "samples": "res/cells/m/x/t/test/samples.parquet",
        "grades": "res/cells/m/x/t/test/grades.parquet",
        "verifier": "res/cells/m/x/t/verifier/verifier.parquet",  # trained per (cell, reward model)
    }
    prm = inputs(SimpleNamespace(**{**vars(w), "rm": "prm"}))
    assert "verifier" not in prm and prm["tasks"] == "res/tasks/t/test.parquet"
    assert score_gpus(rm()) == score_gpus(rm(kind="hf_prm", model="p", device="cpu")) == 0
    assert score_gpus(rm(kind="hf_sequence_classification", model="p")) == 1
    assert score_gpus(rm(kind="vllm_classify", model="p", tensor_parallel_size=2)) == 2


@pytest.mark.parametrize("kind", ["hf_sequence_classification", "hf_prm", "vllm_classify", "vllm_prm"])
def test_a_checkpoint_without_a_reward_head_is_refused(rm_dirs, tmp_path, kind):
    """A causal LM's checkpoint as the reward model: transformers would give it a randomly initialised
    head (a warning only), vLLM would convert it into a pooling model; both are refused before scoring,
    naming reward_models.<name>.model. (vLLM kinds: the check runs before any engine starts.)"""
    from transformers import LlamaForCausalLM

    from bongain.scoring.hf_rm import HFProcessRM, HFSequenceClassifierRM
    from bongain.scoring.vllm_rm import check_head

    tok = build_tokenizer()
    torch.manual_seed(0)
    LlamaForCausalLM(_config(tok, pad_token_id=tok.pad_token_id)).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    cfg = complete_block("reward_models.verifier", {**hf_cfg(tmp_path / "lm"), "kind": kind})
    with pytest.raises(ValueError, match=r"'reward_models\.<name>\.model'.*(no trained|head)"):
        if kind == "hf_sequence_classification":
            HFSequenceClassifierRM.load(cfg, {})
        elif kind == "hf_prm":
            HFProcessRM.load(cfg, {})
        else:
            check_head(cfg, kind)
    # the real heads pass
    check_head(
        complete_block("reward_models.verifier", {**hf_cfg(rm_dirs / "seq"), "kind": "vllm_classify"}),
        "vllm_classify",
    )
    check_head(
        complete_block("reward_models.verifier", {**hf_cfg(rm_dirs / "prm"), "kind": "vllm_prm"}), "vllm_prm"
    )


# ------------------------------------------------------------------------ the downloaded snapshot


def test_hub_reward_model_loads_its_recorded_snapshot(rm_dirs, fake_vllm):
    """A hub RM is loaded from the snapshot folder its download recorded (the score job passes it), never
    by repo and revision: here the repo id does not exist anywhere, the snapshot does. The name in the
    scores table keeps the repo id."""
    repo = "org/not-on-this-machine"
    samples = samples_frame()
    by_folder = make_verifier(hf_cfg(rm_dirs / "seq"), questions=QUESTIONS).score(samples, GRADES)
    rm = make_verifier(hf_cfg(repo, revision="v1"), questions=QUESTIONS, snapshot=str(rm_dirs / "seq"))
    assert rm.name == f"hf_sequence_classification:{repo}"
    np.testing.assert_array_equal(rm.score(samples, GRADES), by_folder)
    prm = make_verifier(
        {**hf_cfg(repo), "kind": "hf_prm"}, questions=QUESTIONS, snapshot=str(rm_dirs / "prm")
    )
    assert prm.name.startswith(f"hf_prm:{repo}")
    with pytest.raises(OSError):  # without the snapshot it would look for the repo (offline: fails)
        make_verifier(hf_cfg(repo), questions=QUESTIONS)
    # vLLM kinds: the engine gets the folder and no revision
    cfg = {"kind": "vllm_classify", "model": repo, "revision": "v1", "dtype": "float32"}
    vrm = make_verifier(cfg, questions=QUESTIONS, snapshot=str(rm_dirs / "seq"))
    (llm,) = fake_vllm.LLM.instances
    assert (llm.model, llm.revision) == (str(rm_dirs / "seq"), None)
    assert vrm.name == f"vllm_classify:{repo}"
