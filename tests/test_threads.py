"""The OpenMP wait policy of the sample stage (bongain.threads): set unless the user chose, never results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bongain.threads import USER_WAIT_SETTINGS, passive_openmp
from conftest import REPO


def test_passive_openmp_sets_the_policy_unless_the_user_chose_one():
    env = {"PATH": "/bin"}
    assert passive_openmp(env) is True
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    for name in USER_WAIT_SETTINGS:
        chosen = {name: "42"}
        assert passive_openmp(chosen) is False
        assert chosen == {name: "42"}


def test_passive_openmp_refuses_once_torch_is_loaded():
    import torch  # noqa: F401  (the runtime has read its environment now)

    with pytest.raises(RuntimeError, match="before torch is imported"):
        passive_openmp()


def test_sample_scripts_set_the_policy_before_torch():
    """The rule scripts of the sample stage call it before their first torch import (inside ``main()``)."""
    for name in ("sample.py", "sample_cell.py"):
        lines = [line.strip() for line in (REPO / "workflow" / "scripts" / name).read_text().splitlines()]
        call = lines.index("passive_openmp()  # before anything imports torch")
        torch_lines = [i for i, line in enumerate(lines) if line.startswith(("import torch", "from torch"))]
        first_torch = min(torch_lines)
        assert call < first_torch, name


SAMPLE = """
import json, sys
from bongain.threads import passive_openmp
passive_openmp()
import torch
from bongain.sampling.loop import SamplingParams, sample_prompts
from bongain.sampling.models import load_causal_lm, load_manifest
torch.set_num_threads(2)
model, tok = load_causal_lm(load_manifest(sys.argv[1]))
prompts = [f"Q: What is {a} + {a + 3}?\\nA:" for a in range(4)]
ids = [tok(p).input_ids for p in prompts]
params = SamplingParams(n=4, temperature=0.7, top_p=1.0, max_new_tokens=12, stop=(), seed=3)
out = sample_prompts(model, tok, prompts, ids, [str(i) for i in range(4)], params, batch_prompts=4,
                     progress=False)
print(json.dumps([[c.token_ids, c.sum_logprob, c.sum_entropy, c.sum_selfcert] for c in out]))
"""


@pytest.mark.slow
def test_samples_do_not_depend_on_the_wait_policy(embedded_manifest):
    """The same samples, bit for bit, with threads sleeping (the stage's policy) and spinning (GNU
    OpenMP's default), two threads each."""
    outputs = []
    for setting in ({}, {"GOMP_SPINCOUNT": "300000"}):
        env = {k: v for k, v in os.environ.items() if k not in USER_WAIT_SETTINGS} | setting
        res = subprocess.run(
            [sys.executable, "-c", SAMPLE, str(embedded_manifest)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        outputs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1]
