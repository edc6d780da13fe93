"""Shards and batch checkpoints: arithmetic, merge checks, byte-identity with unsharded sampling, resume,
and the offline dry run of the reproduction config."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from bongain.config import ConfigError, load_config, validate_config
from bongain.io import ArtifactError, read_parquet, write_parquet_atomic
from bongain.sampling.loop import SamplingParams, completions_frame, sample_prompts
from bongain.sampling.shards import (
    ShardError,
    batch_path,
    check_rows,
    fingerprint,
    merge_shards,
    n_shards,
    partial_dir,
    run_checkpointed,
    shard_names,
    shard_rows,
)

CELL = {"model": "m", "method": "me", "task": "t", "split": "test"}


# ---------------------------------------------------------------- arithmetic


def test_shard_arithmetic_covers_every_row_once():
    for n_prompts in (1, 5, 8, 9, 200):
        for size in (None, 1, 4, 8, 100):
            names = shard_names(n_prompts, size)
            assert len(names) == n_shards(n_prompts, size)
            rows = [shard_rows(n_prompts, size, s) for s in names]
            assert rows[0][0] == 0 and rows[-1][1] == n_prompts
            assert all(a[1] == b[0] for a, b in itertools.pairwise(rows))
            assert all(start < stop for start, stop in rows)
    assert shard_names(9, 4) == ["0000", "0001", "0002"] and shard_rows(9, 4, "0002") == (8, 9)
    assert n_shards(9, None) == 1 and shard_rows(9, None, "0000") == (0, 9)


def test_shard_that_does_not_exist():
    with pytest.raises(ValueError, match="has 3 shard"):
        shard_rows(9, 4, "0003")
    with pytest.raises(ValueError, match="does not exist"):
        shard_rows(9, 4, "2")  # non-canonical name


def test_partial_dir_is_a_hidden_sibling(tmp_path):
    assert partial_dir(tmp_path / "a" / "0001.parquet") == tmp_path / "a" / ".0001.parquet.partial"


# ---------------------------------------------------------------- merge


def fake_samples(prompt_ids, n, **cell) -> pl.DataFrame:
    rows = [(p, j) for p in prompt_ids for j in range(n)]
    k = len(rows)
    return pl.DataFrame(
        {
            **{c: [v] * k for c, v in {**CELL, **cell}.items()},
            "prompt_id": [p for p, _ in rows],
            "sample_idx": [j for _, j in rows],
            "prompt": ["q"] * k,
            "completion": [f"{p}/{j}" for p, j in rows],
            "n_tokens": [1] * k,
            "finish_reason": ["eos"] * k,
            "sum_logprob": [-1.0] * k,
            "mean_logprob": [-1.0] * k,
            "mean_entropy": [0.5] * k,
            "self_certainty": [1.5] * k,
            "seed": list(range(k)),
        }
    )


def tasks_table(ids) -> pl.DataFrame:
    return pl.DataFrame({"prompt_id": ids})


IDS = [f"t-{i:05d}" for i in range(7)]


def write_shards(tmp_path, parts, n=2):
    paths = []
    for i, ids in enumerate(parts):
        p = tmp_path / "shards" / f"{i:04d}.parquet"
        write_parquet_atomic(fake_samples(ids, n), p, "samples")
        paths.append(p)
    return paths


def test_merge_in_task_order(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], IDS[3:6], IDS[6:7]])
    merged = merge_shards(paths, tasks_table(IDS), 2, 3, cell=CELL)
    assert merged["prompt_id"].to_list() == [p for p in IDS for _ in range(2)]
    assert merged["sample_idx"].to_list() == [0, 1] * 7


def test_merge_names_missing_prompt_and_shard(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], [IDS[3], IDS[5]], IDS[6:7]])
    with pytest.raises(ShardError, match=r"0001\.parquet.*missing prompt\(s\) \['t-00004'\]"):
        merge_shards(paths, tasks_table(IDS), 2, 3)


def test_merge_names_duplicate_across_shards(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], [IDS[2], IDS[4], IDS[5]], IDS[6:7]])
    with pytest.raises(
        ShardError, match=r"0001\.parquet: prompt\(s\) \['t-00002'\] already in .*0000\.parquet"
    ):
        merge_shards(paths, tasks_table(IDS), 2, 3)


def test_merge_names_duplicated_rows_within_a_shard(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], IDS[3:6], IDS[6:7]])
    df = read_parquet(paths[1], "samples")
    write_parquet_atomic(pl.concat([df, df.head(1)]), paths[1], "samples")
    with pytest.raises(ShardError, match=r"0001\.parquet.*without exactly 2 samples.*'t-00003'"):
        merge_shards(paths, tasks_table(IDS), 2, 3)


def test_merge_wrong_shard_count_and_wrong_cell(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], IDS[3:6]])
    with pytest.raises(ShardError, match="need 3 shard file"):
        merge_shards(paths, tasks_table(IDS), 2, 3)
    paths = write_shards(tmp_path, [IDS[0:3], IDS[3:6], IDS[6:7]])
    with pytest.raises(ShardError, match="column 'model'"):
        merge_shards(paths, tasks_table(IDS), 2, 3, cell={**CELL, "model": "other"})


def test_merge_truncated_shard_names_file(tmp_path):
    paths = write_shards(tmp_path, [IDS[0:3], IDS[3:6], IDS[6:7]])
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"0002\.parquet: not a readable Parquet"):
        merge_shards(paths, tasks_table(IDS), 2, 3)


def test_check_rows_order():
    df = fake_samples(IDS[:2], 2)
    check_rows(df, IDS[:2], 2, "x")
    with pytest.raises(ShardError, match="not in task-table order"):
        check_rows(df.reverse(), IDS[:2], 2, "x")


# ---------------------------------------------------------------- real sampling: byte identity, resume


class DigitTokenizer:
    eos_token_id = 1
    pad_token_id = 0

    def decode(self, ids, skip_special_tokens=True):
        return "".join("\n" if t == 10 else chr(97 + t % 26) for t in ids)


PARAMS = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=5, stop=("\n",), seed=11)
PROMPT_IDS = [f"t-{i:05d}" for i in range(10)]
TOKENS = [[5 + i % 7, 6, 7 + i % 3, 8 + i] for i in range(10)]
PROMPTS = [f"prompt {i}" for i in range(10)]


def sampler(model, lo=0, calls=None):
    """compute(start, stop) over the prompts [lo, ...), as workflow/scripts/sample.py builds it."""

    def compute(start, stop):
        if calls is not None:
            calls.append((start, stop))
        a, b = lo + start, lo + stop
        out = sample_prompts(
            model,
            DigitTokenizer(),
            PROMPTS[a:b],
            TOKENS[a:b],
            PROMPT_IDS[a:b],
            PARAMS,
            batch_prompts=2,
            progress=False,
        )
        return pl.DataFrame(completions_frame(out, PROMPTS[a:b], PROMPT_IDS[a:b])).with_columns(
            **{c: pl.lit(v) for c, v in CELL.items()}
        )

    return compute


def test_merged_shards_are_byte_identical_to_unsharded(tiny_lm, tmp_path):
    # reference: plain sampling of the whole split in batches of 2, no checkpoints
    direct = tmp_path / "direct.parquet"
    write_parquet_atomic(sampler(tiny_lm)(0, 10), direct, "samples")
    # unsharded job with batch checkpoints
    whole = tmp_path / "whole" / "samples.parquet"
    df, reused = run_checkpointed(PROMPT_IDS, 3, 2, partial_dir(whole), "fp", sampler(tiny_lm))
    write_parquet_atomic(df, whole, "samples")
    assert reused == 0
    # shards of 4 prompts (2 batches each; the last shard is short), then the merge
    shard_paths = []
    for name in shard_names(10, 4):
        start, stop = shard_rows(10, 4, name)
        out = tmp_path / "shards" / f"{name}.parquet"
        ids = PROMPT_IDS[start:stop]
        df, _ = run_checkpointed(ids, 3, 2, partial_dir(out), "fp", sampler(tiny_lm, lo=start))
        write_parquet_atomic(df, out, "samples")
        shard_paths.append(out)
    merged = tmp_path / "merged.parquet"
    write_parquet_atomic(
        merge_shards(shard_paths, tasks_table(PROMPT_IDS), 3, 4, cell=CELL), merged, "samples"
    )
    assert direct.read_bytes() == whole.read_bytes() == merged.read_bytes()


def test_resume_reuses_checkpoints_and_gives_identical_output(tiny_lm, tmp_path):
    ref, _ = run_checkpointed(PROMPT_IDS, 3, 2, tmp_path / "ref", "fp", sampler(tiny_lm))
    folder = tmp_path / "p"
    calls: list = []
    run_checkpointed(PROMPT_IDS[:4], 3, 2, folder, "fp", sampler(tiny_lm, calls=calls))  # "crash" after 2
    assert calls == [(0, 2), (2, 4)]
    done = {p.name: p.stat().st_mtime_ns for p in folder.glob("batch-*.parquet")}
    assert sorted(done) == ["batch-00000.parquet", "batch-00001.parquet"]
    (folder / ".batch-00002.parquet.abc.tmp").write_bytes(b"PAR1 half a file")  # an interrupted write
    calls.clear()
    df, reused = run_checkpointed(PROMPT_IDS, 3, 2, folder, "fp", sampler(tiny_lm, calls=calls))
    assert reused == 2 and calls == [(4, 6), (6, 8), (8, 10)]
    assert {n: (folder / n).stat().st_mtime_ns for n in done} == done  # finished work untouched
    assert not list(folder.glob("*.tmp"))
    assert df.equals(ref)


def test_bad_checkpoint_is_recomputed_not_trusted(tiny_lm, tmp_path):
    ref, _ = run_checkpointed(PROMPT_IDS, 3, 2, tmp_path / "ref", "fp", sampler(tiny_lm))
    folder = tmp_path / "p"
    run_checkpointed(PROMPT_IDS[:6], 3, 2, folder, "fp", sampler(tiny_lm))
    data = batch_path(folder, 1).read_bytes()
    batch_path(folder, 1).write_bytes(data[: len(data) // 2])  # truncated under the final name
    write_parquet_atomic(fake_samples(PROMPT_IDS[4:5], 3), batch_path(folder, 2), "samples")  # wrong rows
    calls: list = []
    df, reused = run_checkpointed(PROMPT_IDS, 3, 2, folder, "fp", sampler(tiny_lm, calls=calls))
    assert reused == 1 and calls == [(2, 4), (4, 6), (6, 8), (8, 10)]
    assert df.equals(ref)


def test_other_fingerprint_discards_checkpoints(tiny_lm, tmp_path):
    folder = tmp_path / "p"
    run_checkpointed(PROMPT_IDS[:4], 3, 2, folder, fingerprint({"temperature": 1.0}), sampler(tiny_lm))
    calls: list = []
    _, reused = run_checkpointed(
        PROMPT_IDS[:4], 3, 2, folder, fingerprint({"temperature": 0.7}), sampler(tiny_lm, calls=calls)
    )
    assert reused == 0 and calls == [(0, 2), (2, 4)]


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint([PARAMS]) != fingerprint([SamplingParams(**{**PARAMS.__dict__, "seed": 12})])


# ---------------------------------------------------------------- config and DAG


def test_shard_prompts_must_hold_whole_batches(repo):
    cfg = load_config(repo / "config" / "test.yaml")
    cfg["sampling"]["shard_prompts"] = 6  # batch_prompts is 4
    with pytest.raises(ConfigError, match=r"config key 'sampling\.shard_prompts': 6 is not a multiple"):
        validate_config(cfg)
    cfg["sampling"]["shard_prompts"] = 0
    with pytest.raises(ConfigError, match=r"config key 'sampling\.shard_prompts'"):
        validate_config(cfg)
    cfg["sampling"]["shard_prompts"] = 8
    validate_config(cfg)


def test_paper_config_dry_run(repo, tmp_path):
    """The reproduction config builds its whole DAG offline (no dataset, model or GPU is touched)."""
    from bongain.config import cells, split_sizes
    from test_workflow import job_counts, smk

    cfg = load_config(repo / "config" / "paper.yaml")
    n_cells = len(cells(cfg))
    assert n_cells == 54 and len(cfg["models"]) == 18 and len(cfg["methods"]) == 6
    assert all(m["backend"] == "vllm" and m["source"]["kind"] == "hub" for m in cfg["models"].values())
    assert cfg["reward_models"]["skywork"]["model"].startswith("Skywork/Skywork-Reward-V2")
    # a pretrained RM needs no verifier_train split: only validation (features) and test (gains) are sampled
    sizes, sampled = split_sizes(cfg), ("validation", "test")
    shards_per_cell = sum(n_shards(sizes[s], cfg["sampling"]["shard_prompts"]) for s in sampled)
    assert shards_per_cell == 3
    res = smk(
        repo, "-n", "--cores", "1", "--configfile", str(repo / "config" / "paper.yaml"), workdir=tmp_path
    )
    counts = job_counts(res.stdout + res.stderr)
    assert counts["prepare_model"] == 18 and counts["task_split"] == 3 * len(sampled)
    # every hub checkpoint (18 models + the reward model) is fetched once (a local rule: tests/test_slurm.py)
    assert counts["download"] == 19
    assert counts["sample"] == shards_per_cell * n_cells == 162
    assert counts["merge_samples"] == counts["grade"] == len(sampled) * n_cells
    assert counts["gains"] == counts["features"] == counts["score"] == n_cells
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- one job per cell


class CellTokenizer(DigitTokenizer):
    """DigitTokenizer that also encodes text (a character's code modulo the tiny model's vocabulary)."""

    def __call__(self, text, add_special_tokens=True):
        return type("Enc", (), {"input_ids": [2 + ord(ch) % 60 for ch in text[-12:]]})()


class TinyBackend:
    """The transformers backend's sampling call on the tiny model (no checkpoint on disk to load)."""

    def __init__(self, model):
        self.model, self.tokenizer = model, CellTokenizer()

    def sample(self, prompts, prompt_token_ids, prompt_ids, params, *, batch_prompts):
        return sample_prompts(
            self.model,
            self.tokenizer,
            prompts,
            prompt_token_ids,
            prompt_ids,
            params,
            batch_prompts=batch_prompts,
            progress=False,
        )


def test_one_job_per_cell_equals_one_job_per_split_and_resumes(tiny_lm, tmp_path):
    """sample_cell (one loaded model, every split) writes for each split exactly the table of a job that
    samples that split alone; killed after its first split, a rerun reads that split back from its
    checkpoints and computes only the rest."""
    from bongain.sampling.split import finish, sample_cell, sample_split
    from bongain.tasks.sources import TaskSpec
    from bongain.tasks.splits import build_splits

    sizes = {"exemplars": 2, "verifier_train": 3, "validation": 4, "test": 2}
    spec = TaskSpec.from_config({"generator": "add1", "answer_type": "number"})
    tables = build_splits("add1", spec, sizes, 0)
    splits = ["verifier_train", "validation", "test"]
    common = dict(
        manifest={"path": "tiny"},
        model_cfg={"backend": "transformers"},
        method={
            "prompt_format": "fewshot",
            "fewshot_k": 2,
            "system_prompt": None,
            "temperature": 1.0,
            "top_p": 1.0,
            "max_new_tokens": 4,
        },
        task_cfg={"generator": "add1", "answer_type": "number"},
        sampling={"n": 3, "seed": 5, "batch_prompts": 2, "shard_prompts": None},
        sizes=sizes,
        split_seed=0,
        version=1,
        backend=TinyBackend(tiny_lm),
    )
    cell = {"model": "m", "method": "me", "task": "add1"}
    alone = {
        s: sample_split(tables[s], {**cell, "split": s}, output=str(tmp_path / "alone" / s), **common)[0]
        for s in splits
    }
    outputs = {s: str(tmp_path / "cell" / s / "samples.parquet") for s in splits}
    written = []

    def write(df, path):
        write_parquet_atomic(df, path, "samples")
        written.append(path)
        if len(written) == 1 and crash:
            raise KeyboardInterrupt  # killed right after writing its first split

    crash = True
    with pytest.raises(KeyboardInterrupt):
        sample_cell({s: tables[s] for s in splits}, cell, outputs=outputs, write=write, **common)
    crash = False
    reused = sample_cell({s: tables[s] for s in splits}, cell, outputs=outputs, write=write, **common)
    assert reused == {"verifier_train": 2, "validation": 0, "test": 0}  # 3 prompts = 2 batches of 2
    finish(*outputs.values())
    for s in splits:
        assert read_parquet(outputs[s], "samples").equals(alone[s]), s
        assert alone[s]["split"].unique().to_list() == [s]
        assert not partial_dir(outputs[s]).exists()
