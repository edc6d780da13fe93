"""Writes ``recorded_vllm_generate.json``: the FAKE recording replayed by :mod:`fakes.vllm_fake`.

No vLLM run produced it (vLLM cannot run on these machines). It is synthetic data laid out exactly as the
documented vLLM 0.33 output structure (API brief §1: RequestOutput.outputs -> CompletionOutput(index, text,
token_ids, cumulative_logprob, logprobs: list[dict[int, Logprob(logprob, rank, decoded_token)]],
finish_reason, stop_reason)). Each generated position stores the top-4 entries (ranks 1..4) plus the
sampled token when it is outside them, as ``logprobs=4`` would, and, as test-only ground truth that vLLM
never returns, the exact entropy of the synthetic next-token distribution (``_exact_entropy``).

Run once: ``python tests/fakes/make_recording.py``. The JSON is committed; tests never regenerate it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

VOCAB = 64
TOP = 4
EOS, NEWLINE, STOP_TOKEN = 2, 10, 7
# (finish_reason, stop_reason, generated length incl. the final token) per sample; 3 requests x 4 samples
PLAN = [
    [("stop", None, 4), ("stop", "\n", 3), ("length", None, 6), ("stop", STOP_TOKEN, 5)],
    [("length", None, 6), ("stop", None, 2), ("stop", None, 5), ("stop", "\n", 4)],
    [("stop", "\n", 1), ("length", None, 6), ("stop", STOP_TOKEN, 3), ("stop", None, 6)],
]


def decode(t: int) -> str:
    return "\n" if t == NEWLINE else chr(97 + t % 26)


def position(rng: np.random.Generator, sampled: int | None) -> tuple[int, list, float]:
    z = rng.normal(0, rng.choice([0.5, 2.0, 4.0]), VOCAB)
    p = np.exp(z - z.max())
    p /= p.sum()
    if sampled is None:
        ordinary = [t for t in range(VOCAB) if t not in (EOS, NEWLINE, STOP_TOKEN)]
        q = p[ordinary] / p[ordinary].sum()
        sampled = int(rng.choice(ordinary, p=q))
    order = np.argsort(-p, kind="stable")
    rank = {int(t): r + 1 for r, t in enumerate(order)}
    keep = [int(t) for t in order[:TOP]]
    if sampled not in keep:
        keep.append(sampled)
    entries = [[t, float(np.log(p[t])), rank[t], decode(t)] for t in keep]
    return sampled, entries, float(-(p * np.log(p)).sum())


def main() -> None:
    rng = np.random.default_rng(20261123)
    requests = []
    for plan in PLAN:
        outputs = []
        for index, (finish, stop_reason, length) in enumerate(plan):
            last = (
                {None: EOS, "\n": NEWLINE, STOP_TOKEN: STOP_TOKEN}[stop_reason] if finish == "stop" else None
            )
            token_ids, positions, text = [], [], ""
            for t in range(length):
                tok, entries, h = position(rng, last if t == length - 1 else None)
                token_ids.append(tok)
                positions.append({"entries": entries, "_exact_entropy": h})
                if not (t == length - 1 and finish == "stop"):
                    text += decode(tok)  # EOS / stop token skipped, stop string not included
            outputs.append(
                {
                    "index": index,
                    "text": text,
                    "token_ids": token_ids,
                    "finish_reason": finish,
                    "stop_reason": stop_reason,
                    "positions": positions,
                }
            )
        requests.append({"outputs": outputs})
    doc = {
        "_provenance": (
            "FAKE recording for tests: synthetic outputs laid out as the documented vLLM 0.33 structures "
            "(docs/vllm-and-reward-models.md section 1), written by tests/fakes/make_recording.py; "
            "never produced by a real vLLM run. '_exact_entropy' is test-only ground truth."
        ),
        "vllm_version_documented": "0.33.0",
        "vocab_size": VOCAB,
        "top_logprobs_recorded": TOP,
        "eos_token_id": EOS,
        "stop_token_id": STOP_TOKEN,
        "requests": requests,
    }
    out = Path(__file__).with_name("recorded_vllm_generate.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
