"""The sampler: determinism, independence from batch composition, stops, shared-prefix prefill."""

from __future__ import annotations

import math

import pytest
import torch

from bongain.sampling.loop import (
    SamplingParams,
    choose_tokens,
    common_prefix_length,
    completions_frame,
    first_stop_prefix,
    raw_logprob_entropy,
    raw_token_stats,
    sample_batch,
    sample_prompts,
    sample_seed,
    stop_candidate_table,
    truncate_at_stop,
    uniform_block,
    uniform_stream,
)


def decode_digits(ids):
    # token t -> chr(ord('a') + t % 26); token 10 is a newline, so stop strings can fire
    return "".join("\n" if t == 10 else chr(97 + t % 26) for t in ids)


def params(**kw):
    base = dict(n=4, temperature=1.0, top_p=1.0, max_new_tokens=6, stop=("\n",), seed=3)
    return SamplingParams(**{**base, **kw})


def run(model, prompts, p, seeds=None):
    seeds = seeds or [[sample_seed(p.seed, f"p{i}", j) for j in range(p.n)] for i in range(len(prompts))]
    return sample_batch(model, decode_digits, prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]))


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(1, "a", 0) == sample_seed(1, "a", 0)
    seeds = {sample_seed(1, p, j) for p in ("a", "b") for j in range(8)}
    assert len(seeds) == 16 and all(0 <= s < 2**63 for s in seeds)


def test_uniform_stream_is_counter_based():
    a, b = uniform_stream(5), uniform_stream(5)
    xs = [next(a) for _ in range(40)]
    assert xs == [next(b) for _ in range(40)]
    assert all(0.0 <= x < 1.0 for x in xs)


def test_truncate_at_stop_takes_earliest():
    assert truncate_at_stop("ab\ncd##", ("##", "\n")) == ("ab", True)
    assert truncate_at_stop("abc", ("\n",)) == ("abc", False)
    assert truncate_at_stop("abc", ()) == ("abc", False)


def test_common_prefix_leaves_one_token():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 1
    assert common_prefix_length([[5, 6, 7]]) == 2


def test_choose_tokens_inverse_cdf():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    u = torch.tensor([0.49, 0.95], dtype=torch.float64)
    assert choose_tokens(logits, u, 1.0, 1.0).tolist() == [0, 2]
    u = torch.tensor([0.51, 0.05], dtype=torch.float64)
    assert choose_tokens(logits, u, 1.0, 1.0).tolist() == [1, 0]
    # top_p keeps the smallest prefix of the descending order whose mass reaches top_p
    top = choose_tokens(logits, torch.tensor([0.99, 0.99], dtype=torch.float64), 1.0, 0.5)
    assert top.tolist() == [0, 2]


def test_choose_tokens_matches_distribution():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    logits = torch.log(probs).repeat(20000, 1)
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(20000, generator=gen, dtype=torch.float64)
    counts = torch.bincount(choose_tokens(logits, u, 1.0, 1.0), minlength=4).double() / 20000
    assert torch.allclose(counts, probs.double(), atol=0.015)


def test_raw_logprob_entropy():
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    lp, h = raw_logprob_entropy(logits, torch.tensor([1, 0]))
    assert lp.tolist() == pytest.approx([math.log(0.5), math.log(0.9)], abs=1e-6)
    assert h.tolist() == pytest.approx([math.log(2), -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))], abs=1e-6)


def test_raw_token_stats_self_certainty():
    """Self-certainty KL(U || p) written out term by term: 0 for a uniform row, positive otherwise."""
    probs = [[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1], [0.97, 0.01, 0.01, 0.01]]
    logits = torch.log(torch.tensor(probs)) + torch.tensor([[3.0], [-1.0], [0.5]])  # shift: no effect
    lp, h, sc = raw_token_stats(logits, torch.tensor([0, 1, 2]))
    want = [sum(0.25 * math.log(0.25 / q) for q in row) for row in probs]
    assert sc.tolist() == pytest.approx(want, abs=1e-6)
    assert sc[0] == pytest.approx(0.0, abs=1e-6) and sc[1] < sc[2]
    lp2, h2 = raw_logprob_entropy(logits, torch.tensor([0, 1, 2]))
    assert torch.equal(lp, lp2) and torch.equal(h, h2)


def test_raw_token_stats_against_float64_brute_force():
    """Log-probability, entropy and self-certainty from the shifted-logit formulas against float64
    log-softmax written out, on flat and very peaked rows (logit scales 0.1 to 40)."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 3000, generator=gen) * torch.tensor([[0.1], [1.0], [3.0], [10.0], [25.0], [40.0]])
    tokens = torch.randint(0, 3000, (6,), generator=gen)
    tokens[-1] = int(logits[-1].argmax())
    lp, h, sc = raw_token_stats(logits.bfloat16(), tokens)
    z = logits.bfloat16().double()
    logp = z - torch.logsumexp(z, -1, keepdim=True)
    want_h = -(logp.exp() * logp).sum(-1)
    want_sc = -logp.mean(-1) - math.log(3000)
    assert torch.allclose(lp.double(), logp.gather(-1, tokens[:, None])[:, 0], atol=2e-5, rtol=1e-5)
    assert torch.allclose(h.double(), want_h, atol=2e-5, rtol=1e-5)
    assert torch.allclose(sc.double(), want_sc, atol=2e-5, rtol=1e-5)
    assert bool((h >= 0).all())


@pytest.mark.parametrize("top_p", [1.0, 0.8])
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_draw_shared_equals_the_per_sample_functions(monkeypatch, top_p, chunk_rows):
    """The fast loop's per-node draw, whole or in chunks of rows, gives value for value what
    choose_tokens and raw_token_stats give on one copy of its node's logits per sample."""
    from bongain.sampling import loop

    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(7, 40, generator=gen) * 3).bfloat16()
    node = torch.tensor([3, 0, 3, 6, 1, 3, 0, 5, 2, 6, 4, 4])  # shared, permuted, every row used
    u = torch.rand(len(node), generator=gen, dtype=torch.float64)
    monkeypatch.setattr(loop, "DRAW_CHUNK_LOGITS", 40 * chunk_rows)
    tokens, lp, h, sc = loop._draw_shared(logits, node, u, 0.7, top_p)
    want_tokens = choose_tokens(logits[node], u, 0.7, top_p)
    assert torch.equal(tokens, want_tokens)
    for got, want in zip((lp, h, sc), raw_token_stats(logits[node], want_tokens), strict=True):
        assert torch.equal(got, want)


def brute_force_selfcert(model, prompt, token_ids) -> float:
    """Sum over the completion's positions of KL(U || p_t), p_t the raw (T = 1, full vocabulary) next-token
    distribution of one plain float64 forward pass over prompt + completion (no cache, no batching)."""
    with torch.inference_mode():
        ids = torch.tensor([list(prompt) + list(token_ids)])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].double()
    total = 0.0
    for row in logits:
        p = torch.exp(row - row.max())
        p = (p / p.sum()).tolist()
        v = len(p)
        total += math.fsum((1 / v) * (math.log(1 / v) - math.log(q)) for q in p)
    return total


@pytest.mark.parametrize("decode_loop", ["reference", "fast"])
def test_self_certainty_is_teacher_forced_exact(tiny_lm, decode_loop):
    """Both loops record, per sample, the summed raw self-certainty of a brute-force teacher-forced pass
    (not that of the temperature-scaled or nucleus-truncated sampling distribution), and the samples table
    stores its mean over the generated tokens."""
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    p = params(n=4, max_new_tokens=10, temperature=0.7, top_p=0.9)
    seeds = [[sample_seed(p.seed, f"p{i}", j) for j in range(p.n)] for i in range(len(prompts))]
    out = sample_batch(
        tiny_lm, decode_digits, prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]), loop=decode_loop
    )
    assert len({c.n_tokens for c in out}) > 1
    for c in out:
        want = brute_force_selfcert(tiny_lm, prompts[c.prompt_index], c.token_ids)
        assert want > 0 and c.sum_selfcert == pytest.approx(want, abs=1e-4)
    frame = completions_frame(out, ["a", "b"], ["p0", "p1"])
    assert frame["self_certainty"] == pytest.approx([c.sum_selfcert / c.n_tokens for c in out])


def test_sampling_is_deterministic(tiny_lm):
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    a, b = run(tiny_lm, prompts, params()), run(tiny_lm, prompts, params())
    assert a == b
    assert len(a) == 8 and [(c.prompt_index, c.sample_idx) for c in a] == [
        (i, j) for i in range(2) for j in range(4)
    ]


def test_sample_does_not_depend_on_batch_mates(tiny_lm):
    """A prompt's samples are the same alone or batched with others (fp32: identical tokens)."""
    p = params(max_new_tokens=8)
    seeds = [[sample_seed(3, "x", j) for j in range(4)]]
    alone = run(tiny_lm, [[5, 6, 7, 8]], p, seeds)
    other = [[sample_seed(3, "y", j) for j in range(4)]]
    together = run(tiny_lm, [[5, 6, 7, 8], [5, 2, 3, 4, 9, 9, 12]], p, seeds + other)[:4]
    assert [c.token_ids for c in alone] == [c.token_ids for c in together]
    for x, y in zip(alone, together, strict=True):
        assert x.sum_logprob == pytest.approx(y.sum_logprob, abs=1e-4)


def test_shared_prefix_prefill_matches_full_prefill(tiny_lm):
    """Logits after the shared-prefix prefill equal a plain full forward pass."""
    prompts = [[3, 4, 5, 6, 7], [3, 4, 5, 8]]
    p = params(max_new_tokens=1, n=1, stop=())
    out = run(tiny_lm, prompts, p)
    with torch.inference_mode():
        for c, ids in zip(out, prompts, strict=True):
            logits = tiny_lm(input_ids=torch.tensor([ids])).logits[0, -1]
            lp = torch.log_softmax(logits.float(), -1)[c.token_ids[0]]
            assert c.sum_logprob == pytest.approx(float(lp), abs=1e-4)


def test_finish_reasons_and_lengths(tiny_lm):
    out = run(tiny_lm, [[5, 6, 7]], params(n=16, max_new_tokens=5))
    for c in out:
        assert 1 <= c.n_tokens <= 5
        assert c.finish_reason in {"stop", "eos", "length"}
        if c.finish_reason == "length":
            assert c.n_tokens == 5
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == 10 and "\n" not in c.text
        if c.finish_reason == "eos":
            assert c.token_ids[-1] == 1
        assert c.sum_logprob <= 0 and c.sum_entropy >= 0


def test_params_validation():
    with pytest.raises(ValueError, match="n must be >= 1"):
        params(n=0)
    with pytest.raises(ValueError, match="temperature"):
        params(temperature=0)


@pytest.mark.slow
def test_embedded_model_does_arithmetic(embedded_model):
    """The real model, few-shot 1-digit addition: answers are numbers and many are right."""
    from bongain.sampling.prompts import fewshot_prompt, tokenize_prompt

    model, tok = embedded_model
    shots = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8"), ("What is 1 + 7?", "8")]
    qs = [(a, b) for a in range(3, 7) for b in range(2, 4)]
    prompts = [fewshot_prompt(f"What is {a} + {b}?", shots) for a, b in qs]
    method = {"prompt_format": "fewshot"}
    p = SamplingParams(n=4, temperature=0.7, top_p=1.0, max_new_tokens=6, stop=("\n",), seed=1)
    ids = [tokenize_prompt(x, method, tok) for x in prompts]
    out = sample_prompts(
        model, tok, prompts, ids, [str(i) for i in range(len(qs))], p, batch_prompts=4, progress=False
    )
    assert len(out) == 32
    right = sum(c.text.strip() == str(sum(qs[c.prompt_index])) for c in out)
    assert right >= 8, [c.text for c in out]
    assert all(c.finish_reason == "stop" for c in out if c.text.strip().isdigit())
    again = sample_prompts(
        model, tok, prompts, ids, [str(i) for i in range(len(qs))], p, batch_prompts=4, progress=False
    )
    assert again == out


def test_per_sample_prefill_baseline_gives_the_same_samples(tiny_lm):
    """The naive baseline (each sample prefills its own prompt copy) draws the same tokens: sharing the
    prefill changes cost, not results."""
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    p = params(max_new_tokens=6)
    seeds = [[sample_seed(3, f"p{i}", j) for j in range(p.n)] for i in range(2)]
    shared = sample_batch(tiny_lm, decode_digits, prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]))
    naive = sample_batch(
        tiny_lm, decode_digits, prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]), share_prefill=False
    )
    assert [c.token_ids for c in shared] == [c.token_ids for c in naive]
    assert [(c.prompt_index, c.sample_idx) for c in naive] == [(c.prompt_index, c.sample_idx) for c in shared]


# --------------------------------------------------------------------------------------------------
# The fast decode loop against the reference loop
# --------------------------------------------------------------------------------------------------


def both_loops(model, prompts, p, **kw):
    seeds = [[sample_seed(p.seed, f"p{i}", j) for j in range(p.n)] for i in range(len(prompts))]
    common = dict(pad_id=0, eos_ids=frozenset([1]), **kw)
    ref = sample_batch(model, decode_digits, prompts, seeds, p, loop="reference", **common)
    fast = sample_batch(model, decode_digits, prompts, seeds, p, loop="fast", **common)
    return ref, fast


@pytest.mark.parametrize(
    "kw",
    [
        dict(n=8, max_new_tokens=12),  # newline stop, EOS, length; rows leave at different steps
        dict(n=8, max_new_tokens=12, stop=("\n", "ab", "zz")),  # multi-token stop strings
        dict(n=6, max_new_tokens=9, top_p=0.8, temperature=0.7),  # nucleus
        dict(n=4, max_new_tokens=7, stop=()),  # no stop strings: EOS and length only
        dict(n=16, max_new_tokens=1),
    ],
)
def test_fast_loop_equals_reference_loop(tiny_lm, kw):
    """Same token ids, texts, finish reasons and (float32, same order of additions) the same summed
    logprobs and entropies: the fast loop changes cost, not samples."""
    prompts = [[5, 6, 7, 8], [5, 6, 9], [5, 2, 3, 4, 9, 9, 12]]
    ref, fast = both_loops(tiny_lm, prompts, params(**kw))
    assert [c.token_ids for c in fast] == [c.token_ids for c in ref]
    assert [(c.text, c.finish_reason, c.seed) for c in fast] == [
        (c.text, c.finish_reason, c.seed) for c in ref
    ]
    assert {c.finish_reason for c in ref} >= ({"length"} if kw["max_new_tokens"] == 1 else {"length", "eos"})
    for a, b in zip(fast, ref, strict=True):
        assert a.sum_logprob == pytest.approx(b.sum_logprob, abs=1e-5)
        assert a.sum_entropy == pytest.approx(b.sum_entropy, abs=1e-5)


def test_fast_loop_per_sample_prefill_equals_reference(tiny_lm):
    ref, fast = both_loops(tiny_lm, [[5, 6, 7, 8], [5, 6, 9]], params(n=4), share_prefill=False)
    assert [c.token_ids for c in fast] == [c.token_ids for c in ref]


def test_fast_loop_statistics_are_teacher_forced_exact(tiny_lm):
    """Recompute every sample's per-token raw logprob and entropy by one plain forward pass over
    prompt + completion (no cache, no batching): the fast loop recorded the same numbers."""
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    p = params(n=4, max_new_tokens=10, temperature=0.7)
    _, fast = both_loops(tiny_lm, prompts, p)
    with torch.inference_mode():
        for c in fast:
            ids = list(prompts[c.prompt_index]) + list(c.token_ids)
            logits = tiny_lm(input_ids=torch.tensor([ids])).logits[0, len(prompts[c.prompt_index]) - 1 : -1]
            lp, h = raw_logprob_entropy(logits, torch.tensor(c.token_ids))
            assert c.sum_logprob == pytest.approx(float(lp.double().sum()), abs=1e-4)
            assert c.sum_entropy == pytest.approx(float(h.double().sum()), abs=1e-4)


def test_missing_stop_candidates_are_caught_by_the_exact_check(tiny_lm):
    """An empty candidate table (no step ever decodes): the final exact check still cuts every sample at
    the first stop string, exactly where the reference loop stopped."""
    prompts = [[5, 6, 7, 8], [5, 6, 9]]
    p = params(n=8, max_new_tokens=12, stop=("\n", "ab"))
    none = torch.zeros(64, dtype=torch.bool)
    ref, fast = both_loops(tiny_lm, prompts, p)
    seeds = [[sample_seed(p.seed, f"p{i}", j) for j in range(p.n)] for i in range(len(prompts))]
    blind = sample_batch(
        tiny_lm, decode_digits, prompts, seeds, p, pad_id=0, eos_ids=frozenset([1]), stop_candidates=none
    )
    assert any(c.finish_reason == "stop" for c in ref)
    assert [(c.token_ids, c.text, c.finish_reason) for c in blind] == [
        (c.token_ids, c.text, c.finish_reason) for c in ref
    ]
    for a, b in zip(blind, fast, strict=True):
        assert a.sum_logprob == pytest.approx(b.sum_logprob, abs=1e-6)


def test_stop_candidate_table_and_first_stop_prefix():
    table = stop_candidate_table(decode_digits, 64, ("\n", "ab"))
    # tokens whose text holds '\n', 'a' or 'b': 10 (newline), 0/26/52 ('a'), 1/27/53 ('b')
    assert sorted(torch.nonzero(table).flatten().tolist()) == [0, 1, 10, 26, 27, 52, 53]
    assert not stop_candidate_table(decode_digits, 64, ()).any()
    assert first_stop_prefix([2, 0, 1, 5], decode_digits, ("ab",)) == 3  # "c a b f": "ab" ends at token 3
    assert first_stop_prefix([2, 3], decode_digits, ("ab",)) is None
    assert first_stop_prefix([10], decode_digits, ()) is None


def test_token_texts_equal_the_tokenizers_own_decode(embedded_model):
    """The real tokenizer's token texts from the Rust backend equal ``decode([t])`` for every id, ids past
    the tokenizer's own vocabulary included; a tokenizer that overrides ``decode`` or cleans up spaces is
    decoded through its own ``batch_decode``."""
    from bongain.sampling.loop import token_texts

    model, tok = embedded_model
    vocab = model.get_output_embeddings().weight.shape[0] + 3
    texts = token_texts(tok, vocab)
    assert texts == [tok.decode([t], skip_special_tokens=True) for t in range(vocab)]
    assert sum(map(bool, texts)) > 40000

    class Shouting(type(tok)):
        def decode(self, *args, **kwargs):
            return super().decode(*args, **kwargs).upper()

        def batch_decode(self, seqs, **kwargs):
            return [self.decode(s, **kwargs) for s in seqs]

    loud = Shouting.from_pretrained(tok.name_or_path)
    assert token_texts(loud, 300) == [tok.decode([t], skip_special_tokens=True).upper() for t in range(300)]
    tok.clean_up_tokenization_spaces = True
    try:
        calls = []
        real = type(tok).batch_decode
        type(tok).batch_decode = lambda self, seqs, **kw: calls.append(len(seqs)) or real(self, seqs, **kw)
        try:
            assert token_texts(tok, 50) == [tok.decode([t], skip_special_tokens=True) for t in range(50)]
        finally:
            type(tok).batch_decode = real
        assert calls == [50]
    finally:
        tok.clean_up_tokenization_spaces = False


def test_uniform_block_is_the_stream():
    stream = uniform_stream(99)
    assert uniform_block(99, 40).tolist() == [next(stream) for _ in range(40)]


def test_unknown_loop_is_refused(tiny_lm):
    with pytest.raises(ValueError, match="loop must be one of"):
        sample_batch(
            tiny_lm, decode_digits, [[5, 6]], [[1]], params(n=1), pad_id=0, eos_ids=frozenset(), loop="x"
        )


@pytest.mark.slow
def test_embedded_model_fast_loop_equals_reference(embedded_model):
    """The real model, few-shot prompts with a newline stop and longer answers without one. In float32
    the fast loop's samples equal the reference loop's and its statistics equal a teacher-forced pass
    over prompt + completion. In bf16 (the default dtype) the logits of a row depend at rounding level
    on the batch it is computed in (the loops batch differently), so only the teacher-forced statistics
    are compared, within bf16 tolerance, and a rerun is identical."""
    import copy

    from bongain.sampling.prompts import fewshot_prompt

    model16, tok = embedded_model
    model32 = copy.deepcopy(model16).float()
    shots = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8")]
    prompts = [fewshot_prompt(f"What is {a} + {b}?", shots) for a, b in [(3, 4), (12, 5), (7, 1)]]
    ids = [tok(x).input_ids for x in prompts]
    pids = [str(i) for i in range(len(prompts))]

    def teacher_forced(model, c):
        with torch.inference_mode():
            full = torch.tensor([ids[c.prompt_index] + list(c.token_ids)])
            logits = model(input_ids=full).logits[0, len(ids[c.prompt_index]) - 1 : -1]
            lp, h = raw_logprob_entropy(logits, torch.tensor(c.token_ids))
        return float(lp.double().sum()), float(h.double().sum())

    for p in (
        SamplingParams(n=4, temperature=0.7, top_p=1.0, max_new_tokens=8, stop=("\n",), seed=5),
        SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=16, stop=(), seed=6),
    ):
        run = {
            loop: sample_prompts(
                model32, tok, prompts, ids, pids, p, batch_prompts=3, progress=False, loop=loop
            )
            for loop in ("reference", "fast")
        }
        ref, fast = run["reference"], run["fast"]
        assert [(c.token_ids, c.text, c.finish_reason) for c in fast] == [
            (c.token_ids, c.text, c.finish_reason) for c in ref
        ]
        for a, b in zip(fast, ref, strict=True):
            assert a.sum_logprob == pytest.approx(b.sum_logprob, abs=1e-3)
            assert a.sum_entropy == pytest.approx(b.sum_entropy, abs=1e-3)
            lp, h = teacher_forced(model32, a)
            assert a.sum_logprob == pytest.approx(lp, abs=1e-3) and a.sum_entropy == pytest.approx(
                h, abs=1e-3
            )
        bf16 = sample_prompts(model16, tok, prompts, ids, pids, p, batch_prompts=3, progress=False)
        for c in bf16:
            lp, h = teacher_forced(model16, c)
            assert c.sum_logprob == pytest.approx(lp, abs=0.1 * c.n_tokens)
            assert c.sum_entropy == pytest.approx(h, abs=0.1 * c.n_tokens)
        assert bf16 == sample_prompts(model16, tok, prompts, ids, pids, p, batch_prompts=3, progress=False)
