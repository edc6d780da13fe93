"""Hub downloads (bongain.hub) through a FAKE snapshot_download: what is fetched, where, at which revision;
the hub model's manifest; the offline environment of compute jobs. Nothing here reaches the hub."""

from __future__ import annotations

import json
import os
import sys

import pytest

from bongain import hub
from bongain.config import load_config
from bongain.sampling.models import prepare_model
from fakes.hub_fake import BIN_ONLY_FILES, LLAMA_FILES, REMOTE_CODE_FILES, FakeHub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the download stage runs online
    return FakeHub(
        {
            "meta-llama/Llama-3.1-8B": (COMMIT, LLAMA_FILES),
            "old/bin-only": ("b" * 40, BIN_ONLY_FILES),
            "org/remote-rm": ("c" * 40, REMOTE_CODE_FILES),
            "org/empty": ("d" * 40, ["config.json", "README.md"]),
        }
    )


def fetched(record):
    root = os.path.join(record["path"], "")
    return sorted(os.path.join(d, f)[len(root) :] for d, _, fs in os.walk(record["path"]) for f in fs)


def test_download_fetches_weights_tokenizer_config_only(fake_hub, tmp_path):
    spec = {"repo": "meta-llama/Llama-3.1-8B", "revision": "main", "trust_remote_code": False}
    record = hub.download(spec, str(tmp_path / "hf"), snapshot_download=fake_hub.snapshot_download)
    assert record == {
        "repo": "meta-llama/Llama-3.1-8B",
        "revision": "main",
        "commit": COMMIT,  # what "main" resolved to: the manifest pins it
        "path": str(tmp_path / "hf" / "hub" / "models--meta-llama--Llama-3.1-8B" / "snapshots" / COMMIT),
    }
    (call,) = fake_hub.calls
    assert call["cache_dir"] == str(tmp_path / "hf" / "hub") and call["revision"] == "main"
    files = fetched(record)
    assert not any(f.startswith("original/") for f in files), files  # no 16 GB consolidated .pth
    assert "README.md" not in files and "LICENSE" not in files
    assert {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json"} <= set(
        files
    )
    assert sum(f.endswith(".safetensors") for f in files) == 4


def test_download_falls_back_to_pytorch_weights(fake_hub, tmp_path):
    spec = {"repo": "old/bin-only", "revision": "main", "trust_remote_code": False}
    record = hub.download(spec, str(tmp_path), snapshot_download=fake_hub.snapshot_download)
    assert len(fake_hub.calls) == 2
    files = fetched(record)
    assert {"pytorch_model-00001-of-00002.bin", "pytorch_model.bin.index.json", "vocab.json"} <= set(files)
    assert "training_args.bin" not in files


def test_remote_code_only_when_trusted(fake_hub, tmp_path):
    spec = {"repo": "org/remote-rm", "revision": "main", "trust_remote_code": False}
    files = fetched(hub.download(spec, str(tmp_path / "a"), snapshot_download=fake_hub.snapshot_download))
    assert not any(f.endswith(".py") for f in files) and "chat_template.jinja" in files
    spec["trust_remote_code"] = True
    files = fetched(hub.download(spec, str(tmp_path / "b"), snapshot_download=fake_hub.snapshot_download))
    assert {"configuration_qwen2_rm.py", "modeling_qwen2_rm.py"} <= set(files)


def test_download_without_weights_names_the_repo(fake_hub, tmp_path):
    spec = {"repo": "org/empty", "revision": "main", "trust_remote_code": False}
    with pytest.raises(FileNotFoundError, match=r"'org/empty'.*no \*\.safetensors"):
        hub.download(spec, str(tmp_path), snapshot_download=fake_hub.snapshot_download)


def test_offline_compute_job_cannot_download(fake_hub, tmp_path):
    env = dict(os.environ)
    hub.offline_jobs(str(tmp_path / "hf"), env)
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HOME"] == str((tmp_path / "hf").resolve())
    hub.offline_jobs(None, os.environ)  # as a compute job's script does first
    spec = {"repo": "meta-llama/Llama-3.1-8B", "revision": "main", "trust_remote_code": False}
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        hub.download(spec, str(tmp_path), snapshot_download=fake_hub.snapshot_download)


def test_paper_config_downloads_every_model_and_the_reward_model(repo):
    cfg = load_config(repo / "config" / "paper.yaml")
    downloads = hub.hub_downloads(cfg)
    assert set(downloads) == {f"model-{m}" for m in cfg["models"]} | {"rm-skywork"}
    assert hub.reward_model_download("skywork") == "rm-skywork"
    assert downloads["rm-skywork"]["repo"] == cfg["reward_models"]["skywork"]["model"]
    for slug, m in cfg["models"].items():
        assert downloads[f"model-{slug}"]["revision"] == m["source"]["revision"]
    # a second hub reward model is a second download; one trained per cell (the offline verifier) and one
    # in a local folder download nothing
    cfg["reward_models"]["other"] = {**cfg["reward_models"]["skywork"], "model": "org/other-rm"}
    assert hub.hub_downloads(cfg)["rm-other"]["repo"] == "org/other-rm"
    assert "rm-skywork" not in hub.hub_downloads(cfg, trained=["skywork"])
    cfg["reward_models"]["skywork"]["model"] = str(repo)
    assert "rm-skywork" not in hub.hub_downloads(cfg)
    # the block the paper config's header promises, with the home-cache refusal left on
    import yaml

    assert yaml.safe_load((repo / "config" / "paper.yaml").read_text())["hub"] == {
        "cache": None,
        "allow_home_cache": False,
    }


def test_hub_model_manifest_points_at_the_downloaded_commit(fake_hub, tmp_path):
    spec = {"repo": "meta-llama/Llama-3.1-8B", "revision": "main", "trust_remote_code": False}
    record = hub.download(spec, str(tmp_path / "hf"), snapshot_download=fake_hub.snapshot_download)
    hub.write_record(record, tmp_path / "downloads" / "model-llama.json")
    record = json.loads((tmp_path / "downloads" / "model-llama.json").read_text())
    model_cfg = {
        "source": {"kind": "hub", "repo": "meta-llama/Llama-3.1-8B", "revision": "main"},
        "dtype": "bfloat16",
        "trust_remote_code": False,
    }
    manifest = prepare_model(model_cfg, tmp_path / "m", record)
    assert manifest["path"] == record["path"] and manifest["commit"] == COMMIT
    assert json.loads((tmp_path / "m" / "manifest.json").read_text()) == manifest
    with pytest.raises(ValueError, match="no matching download record"):
        prepare_model(model_cfg, tmp_path / "m", None)
    other = {**model_cfg, "source": {**model_cfg["source"], "revision": "v2"}}
    with pytest.raises(ValueError, match="no matching download record"):
        prepare_model(other, tmp_path / "m", record)


@pytest.mark.parametrize("script", ["sample.py", "score.py", "prepare_model.py"])
def test_compute_scripts_go_offline_before_any_other_import(repo, script):
    """huggingface_hub reads HF_HUB_OFFLINE when imported: the compute jobs' scripts call offline_jobs
    before they import anything that may import it (in ``main()`` where the script has one: vLLM's spawned
    engine core reruns the file, so those scripts do everything inside it)."""
    import ast

    body = ast.parse((repo / "workflow" / "scripts" / script).read_text()).body
    mains = [n for n in body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    body = mains[0].body if mains else body
    body = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    imports = [i for i, n in enumerate(body) if isinstance(n, ast.Import | ast.ImportFrom)]
    call = next(
        i
        for i, n in enumerate(body)
        if isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", "") == "offline_jobs"
    )
    before = [body[i] for i in imports if i < call]
    modules = {a.name for n in before if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in before if isinstance(n, ast.ImportFrom)}
    assert "bongain.hub" in modules
    assert modules - {"bongain.hub"} <= set(sys.stdlib_module_names), (script, modules)


# -- where the checkpoints go on a cluster ------------------------------------------------------------------


def test_cache_location_follows_huggingface_hubs_order(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home)}
    assert hub.cache_location(None, env) == (home / ".cache" / "huggingface" / "hub", "default")
    env["HF_HOME"] = str(tmp_path / "hf")
    assert hub.cache_location(None, env) == (tmp_path / "hf" / "hub", "HF_HOME")
    env["HF_HUB_CACHE"] = str(tmp_path / "hubcache")
    assert hub.cache_location(None, env) == (tmp_path / "hubcache", "HF_HUB_CACHE")
    assert hub.cache_location(str(tmp_path / "shared"), env) == (tmp_path / "shared" / "hub", "hub.cache")


def test_cluster_run_refuses_a_cache_under_home(tmp_path):
    home, scratch = tmp_path / "home", tmp_path / "scratch"
    env = {"HOME": str(home)}
    default = hub.cluster_cache_problem(None, False, env)
    assert default.startswith("config key 'hub.cache': hub.cache is not set, nor HF_HOME or HF_HUB_CACHE")
    assert "hub.allow_home_cache: true" in default and str(home) in default
    under = hub.cluster_cache_problem(str(home / "hf"), False, env)
    assert under.startswith(f"config key 'hub.cache': hub.cache puts the hub checkpoints in {home}/hf/hub")
    assert "HF_HOME puts" in hub.cluster_cache_problem(None, False, {**env, "HF_HOME": str(home / "x")})
    # a shared file system outside home, by the key or by HF_HOME; or home, when the user says so
    assert hub.cluster_cache_problem(str(scratch), False, env) is None
    assert hub.cluster_cache_problem(None, False, {**env, "HF_HOME": str(scratch)}) is None
    assert hub.cluster_cache_problem(None, True, env) is None
    # a home reached through a symlink is still home
    (tmp_path / "gpfs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "gpfs")
    assert hub.cluster_cache_problem(str(tmp_path / "gpfs" / "hf"), False, {"HOME": str(tmp_path / "link")})


def test_the_token_is_held_back_from_the_jobs_environment(fake_hub, tmp_path, monkeypatch):
    env = {"HF_TOKEN": "hf_secret", "HUGGING_FACE_HUB_TOKEN": "hf_old", "PATH": "/bin"}
    monkeypatch.setattr(hub, "_held", {})
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert hub.held_token() is None
    assert hub.hold_token(env) is True
    assert env == {"PATH": "/bin"}  # what sbatch --export=ALL would pass on
    assert hub.held_token() == "hf_secret"
    # the in-process download job uses it
    spec = {"repo": "meta-llama/Llama-3.1-8B", "revision": "main", "trust_remote_code": False}
    out, log = tmp_path / "downloads" / "model-llama.json", tmp_path / "download.log"
    record = hub.fetch(spec, str(tmp_path / "hf"), out, log, snapshot_download=fake_hub.snapshot_download)
    assert fake_hub.calls[0]["token"] == "hf_secret"
    assert json.loads(out.read_text()) == record and record["commit"] == COMMIT
    text = log.read_text()
    assert "downloading meta-llama/Llama-3.1-8B at main" in text and COMMIT in text
    assert "hf_secret" not in text
    # a compute job drops any token it still has
    job = {"HF_TOKEN": "x", "HUGGING_FACE_HUB_TOKEN": "y"}
    hub.offline_jobs(str(tmp_path / "hf"), job)
    assert "HF_TOKEN" not in job and "HUGGING_FACE_HUB_TOKEN" not in job and job["HF_HUB_OFFLINE"] == "1"


def test_a_failed_download_is_logged_and_writes_no_record(fake_hub, tmp_path):
    spec = {"repo": "org/empty", "revision": "main", "trust_remote_code": False}
    out, log = tmp_path / "r.json", tmp_path / "d.log"
    with pytest.raises(FileNotFoundError):
        hub.fetch(spec, str(tmp_path), out, log, snapshot_download=fake_hub.snapshot_download)
    assert not out.exists() and "failed: FileNotFoundError" in log.read_text()


def test_snapshot_path_is_the_recorded_folder(fake_hub, tmp_path):
    spec = {"repo": "org/remote-rm", "revision": "main", "trust_remote_code": False}
    record = hub.download(spec, str(tmp_path / "hf"), snapshot_download=fake_hub.snapshot_download)
    assert hub.snapshot_path(record, "org/remote-rm") == record["path"]
    assert hub.snapshot_path(None, "/models/local-rm") == "/models/local-rm"  # a local folder: as given
    with pytest.raises(ValueError, match="does not belong"):
        hub.snapshot_path(record, "org/other")
    moved = {**record, "path": str(tmp_path / "gone")}
    with pytest.raises(FileNotFoundError, match="rerun its download job"):
        hub.snapshot_path(moved, "org/remote-rm")
