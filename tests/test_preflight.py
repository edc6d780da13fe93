"""Pre-flight check of GPU jobs (bongain.preflight): a job that did not get what its config needs fails at
once, naming the key. There is no GPU here: the devices are FAKE descriptions (:class:`Gpu` records of real
cards' capability and memory) passed where the job would ask torch; the allocation is the SLURM environment
a job would see. The checkpoint sizes are read from real safetensors files."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from bongain import preflight
from bongain.config import complete_block
from bongain.preflight import GIB, Gpu, Need, PreflightError, check_job, problems

# FAKE device descriptions (capability and memory of the real cards)
H100 = Gpu("NVIDIA H100 80GB HBM3", (9, 0), 80 * GIB)
A100_40 = Gpu("NVIDIA A100-SXM4-40GB", (8, 0), 40 * GIB)
T4 = Gpu("Tesla T4", (7, 5), 15 * GIB)
P100 = Gpu("Tesla P100-PCIE-16GB", (6, 0), 16 * GIB)


def vllm_need(tp=1, dtype="bfloat16", weights=16 * GIB, util=0.85):
    return Need(
        what="model 'llama' on vLLM",
        gpus=tp,
        gpus_key="models.llama.vllm.tensor_parallel_size",
        dtype=dtype,
        dtype_key="models.llama.dtype",
        weight_bytes=weights,
        shards=tp,
        memory_fraction=util,
        memory_key="models.llama.vllm.tensor_parallel_size",
        vllm=True,
    )


def never_probe():
    raise AssertionError("the hardware part ran")


# -- what SLURM gave the job ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),  # not a SLURM job, or a job without GPUs
        ({"SLURM_GPUS_ON_NODE": "2"}, 2),
        ({"SLURM_STEP_GPUS": "0"}, 1),
        ({"SLURM_JOB_GPUS": "1,3"}, 2),
        ({"SLURM_GPUS_ON_NODE": "1", "SLURM_JOB_GPUS": "0,1"}, 1),  # the node's count wins
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, None),  # not SLURM's: a user may set it anywhere
    ],
)
def test_allocated_gpus(env, expected):
    assert preflight.allocated_gpus(env) == expected


def test_mode_switch():
    assert preflight.mode({}) == "full"
    assert preflight.mode({"BONGAIN_PREFLIGHT": "Allocation"}) == "allocation"
    with pytest.raises(PreflightError, match="BONGAIN_PREFLIGHT='skip'"):
        preflight.mode({"BONGAIN_PREFLIGHT": "skip"})


# -- the checks ----------------------------------------------------------------------------------------------


def test_fewer_gpus_allocated_than_tensor_parallel():
    (msg,) = problems([vllm_need(tp=2)], allocated=1, gpus=None)
    assert msg.startswith("config key 'models.llama.vllm.tensor_parallel_size'")
    assert "needs 2 GPU(s)" in msg and "allocated 1" in msg
    assert problems([vllm_need(tp=2)], allocated=2, gpus=None) == []


def test_fewer_devices_than_tensor_parallel():
    (msg,) = problems([vllm_need(tp=2, weights=1 * GIB)], allocated=2, gpus=[H100])
    assert "models.llama.vllm.tensor_parallel_size" in msg and "sees 1 CUDA device(s) (NVIDIA H100" in msg
    (msg,) = problems([vllm_need(tp=1)], allocated=1, gpus=[])  # a CPU build of torch on a GPU node
    assert "sees 0 CUDA device(s) (none)" in msg and "BONGAIN_PREFLIGHT=allocation" in msg


def test_bfloat16_needs_compute_capability_8():
    (msg,) = problems([vllm_need(weights=1 * GIB)], allocated=1, gpus=[T4])
    assert msg.startswith("config key 'models.llama.dtype': bfloat16 needs compute capability 8.0")
    assert "Tesla T4 has 7.5" in msg
    assert problems([vllm_need(dtype="float16", weights=1 * GIB)], allocated=1, gpus=[T4]) == []
    assert problems([vllm_need(weights=1 * GIB)], allocated=1, gpus=[A100_40]) == []


def test_vllm_needs_compute_capability_7():
    (msg,) = problems([vllm_need(dtype="float16", weights=1 * GIB)], allocated=1, gpus=[P100])
    assert "runs on vLLM, which needs compute capability 7.0" in msg and "Tesla P100-PCIE-16GB has 6.0" in msg


def test_weights_must_fit_the_share_of_each_gpu():
    # 8B in bf16 (16 GiB): on one 40 GB card fine; 0.85 of a 15 GiB T4 (fp16) is too little
    assert problems([vllm_need(weights=16 * GIB)], allocated=1, gpus=[A100_40]) == []
    (msg,) = problems([vllm_need(dtype="float16", weights=16 * GIB)], allocated=1, gpus=[T4])
    assert msg.startswith("config key 'models.llama.vllm.tensor_parallel_size'")
    assert "16.0 GiB of float16 weights on each GPU" in msg and "0.85 of its 15.0 GiB on Tesla T4" in msg
    # tensor parallel 2 halves the share: 8 GiB on each of two T4s fits
    assert problems([vllm_need(tp=2, dtype="float16", weights=16 * GIB)], allocated=2, gpus=[T4, T4]) == []
    # the smallest card decides
    need = vllm_need(tp=2, weights=70 * GIB)  # 35 GiB per GPU
    assert problems([need], allocated=2, gpus=[H100, H100]) == []
    assert "on NVIDIA A100-SXM4-40GB" in problems([need], allocated=2, gpus=[H100, A100_40])[0]
    # unknown size: not checked
    assert problems([vllm_need(weights=None)], allocated=1, gpus=[A100_40]) == []


def test_every_problem_of_every_model_is_listed():
    rm = Need("reward model", 1, "reward_model.device", "bfloat16", "reward_model.dtype", 20 * GIB)
    found = problems([vllm_need(weights=16 * GIB), rm], allocated=1, gpus=[T4])
    keys = [m.split("'")[1] for m in found]
    assert keys == [
        "models.llama.dtype",
        "models.llama.vllm.tensor_parallel_size",  # 16 GiB > 0.85 of 15 GiB
        "reward_model.dtype",
        "reward_model.device",  # 20 GiB > 15 GiB
    ]


def test_check_job_modes():
    need = [vllm_need(tp=2)]
    with pytest.raises(PreflightError, match=r"BONGAIN_PREFLIGHT=full\):\n  - config key 'models.llama"):
        check_job(need, {"SLURM_GPUS_ON_NODE": "2"}, probe=lambda: [H100])
    # CI's cluster: GPUs declared to SLURM, none present; the allocation part still refuses
    check_job(need, {"SLURM_GPUS_ON_NODE": "2", "BONGAIN_PREFLIGHT": "allocation"}, probe=never_probe)
    with pytest.raises(PreflightError, match="allocated 1"):
        check_job(need, {"SLURM_GPUS_ON_NODE": "1", "BONGAIN_PREFLIGHT": "allocation"}, probe=never_probe)
    check_job(need, {"SLURM_GPUS_ON_NODE": "1", "BONGAIN_PREFLIGHT": "off"}, probe=never_probe)
    # a local run without GPUs has nothing to check (e.g. vLLM's CPU build); one with GPUs does
    check_job(need, {}, probe=lambda: [])
    with pytest.raises(PreflightError, match="sees 1 CUDA device"):
        check_job(need, {}, probe=lambda: [H100])
    check_job([], {"SLURM_GPUS_ON_NODE": "0"}, probe=never_probe)  # a CPU job


# -- what a job needs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    path = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(path)
    return path, model.num_parameters()


def test_checkpoint_weight_bytes_from_the_safetensors_headers(tiny_checkpoint, tmp_path):
    path, n_params = tiny_checkpoint
    assert preflight.checkpoint_weight_bytes(path, "float32") == 4 * n_params
    assert preflight.checkpoint_weight_bytes(path, "bfloat16") == 2 * n_params
    assert preflight.checkpoint_weight_bytes(path, "auto") == 4 * n_params  # as stored
    assert preflight.checkpoint_weight_bytes(tmp_path, "bfloat16") is None


def test_needs_of_each_job_kind(tiny_checkpoint):
    path, n_params = tiny_checkpoint
    model = {"backend": "vllm", "dtype": "bfloat16"}
    model["vllm"] = complete_block("models.*.vllm", {"tensor_parallel_size": 2, "entropy": "hf_rescore"})
    manifest = {"path": str(path), "dtype": "bfloat16"}  # what the engine loads
    engine, rescore = preflight.sample_needs("m", model, manifest)
    assert (engine.gpus, engine.shards, engine.weight_bytes) == (2, 2, 2 * n_params)
    assert engine.gpus_key == "models.m.vllm.tensor_parallel_size" and engine.memory_fraction == 0.85
    assert (rescore.gpus, rescore.shards, rescore.gpus_key) == (1, 1, "models.m.vllm.entropy")
    assert preflight.sample_needs("m", {**model, "backend": "transformers"}, manifest) == []
    # a manifest without a dtype: vLLM's "auto", weights as stored (float32 here), no bfloat16 check
    (auto, _) = preflight.sample_needs("m", model, {"path": str(path)})
    assert (auto.dtype, auto.weight_bytes) == ("auto", 4 * n_params)

    rm = complete_block(
        "reward_models.verifier", {"kind": "vllm_classify", "model": "org/rm", "tensor_parallel_size": 2}
    )
    (need,) = preflight.score_needs(rm, 2, str(path))
    assert need.gpus_key == "reward_models.<name>.tensor_parallel_size" and need.vllm and need.shards == 2
    hf = complete_block("reward_models.verifier", {"kind": "hf_sequence_classification", "model": "org/rm"})
    (need,) = preflight.score_needs(hf, 1, None)
    assert need.gpus_key == "reward_models.<name>.device" and need.weight_bytes is None and not need.vllm
    assert preflight.score_needs(complete_block("reward_models.verifier", {}), 0, None) == []

    (need,) = preflight.posttrain_needs("m", "gpu", str(path), "float32")
    assert (need.gpus, need.gpus_key, need.weight_bytes) == (1, "posttrain.device", 4 * n_params)
    assert preflight.posttrain_needs("m", "cpu", str(path), "float32") == []


# -- the jobs run it before loading anything -----------------------------------------------------------------


def test_sample_job_refused_before_loading_the_model(monkeypatch, tmp_path):
    from bongain.sampling.split import sample_split

    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    monkeypatch.setenv("BONGAIN_PREFLIGHT", "allocation")
    model = {"backend": "vllm", "dtype": "bfloat16", "trust_remote_code": False}
    model["vllm"] = complete_block("models.*.vllm", {"tensor_parallel_size": 2})
    with pytest.raises(PreflightError, match=r"'models.tiny.vllm.tensor_parallel_size': .* allocated 1"):
        sample_split(
            pl.DataFrame({"prompt_id": ["p"], "question": ["q"]}),
            {"model": "tiny", "method": "m", "task": "t", "split": "test"},
            manifest={"path": str(tmp_path / "never-loaded"), "dtype": "bfloat16"},
            model_cfg=model,
            method=complete_block(
                "methods.*", {"prompt_format": "fewshot", "temperature": 0.7, "max_new_tokens": 8}
            ),
            task_cfg={},
            sampling=complete_block("sampling", {"n": 2}),
            sizes={},
            split_seed=0,
            output=str(tmp_path / "out.parquet"),
            version=1,
        )
    assert not (tmp_path / ".out.parquet.partial").exists()


def test_score_job_refused_before_loading_the_reward_model(monkeypatch):
    from bongain.scoring.registry import score_split

    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    monkeypatch.setenv("BONGAIN_PREFLIGHT", "allocation")
    rm = complete_block(
        "reward_models.verifier", {"kind": "vllm_classify", "model": "org/rm", "tensor_parallel_size": 2}
    )
    samples = pl.DataFrame({"prompt_id": ["p"], "completion": ["c"]})
    tasks = pl.DataFrame({"prompt_id": ["p"], "question": ["q"]})
    with pytest.raises(PreflightError, match=r"'reward_models\.skywork\.tensor_parallel_size'"):
        score_split(rm, samples, pl.DataFrame(), tasks=tasks, rm="skywork")


def test_gpu_post_training_refused_without_a_cuda_device(monkeypatch, tmp_path):
    """A job SLURM gave a GPU but that sees none (here: no CUDA at all) stops before loading the model."""
    from bongain.posttrain.train import train_adapter, training_device

    assert not torch.cuda.is_available()  # this machine: the check meets a job without a device
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    monkeypatch.delenv("BONGAIN_PREFLIGHT", raising=False)
    recipe = complete_block(
        "posttrain.recipes.*", {"kind": "sft", "method": "m", "steps": 1, "batch_size": 1}
    )
    with pytest.raises(
        PreflightError, match=r"'posttrain\.device': post-training of model 'tiny' .* sees 0 CUDA"
    ):
        train_adapter(
            start_path=str(tmp_path / "never-loaded"),
            data=pl.DataFrame({"prompt": ["q"], "completion": ["a"]}),
            recipe="sft",
            recipe_cfg=recipe,
            lora=complete_block("posttrain.lora", {}),
            threads=1,
            adapter_dir=tmp_path / "adapter",
            model="tiny",
            device="gpu",
        )
    assert not (tmp_path / "adapter").exists()
    # CI's switch: the job trains on the CPU it has
    assert training_device("gpu") == "cpu" and training_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"posttrain\.device"):
        training_device("tpu")


def test_unreadable_safetensors_leave_the_weight_size_unknown(tmp_path):
    """An empty or truncated safetensors file (a placeholder, a partial download) gives no size, so the
    memory check is left out instead of the pre-flight check crashing the job."""
    from bongain.preflight import checkpoint_weight_bytes

    (tmp_path / "model.safetensors").write_bytes(b"")
    assert checkpoint_weight_bytes(tmp_path, "bfloat16") is None
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert checkpoint_weight_bytes(tmp_path, "bfloat16") is None
