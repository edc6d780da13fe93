"""A tiny Llama GGUF file written with the ``gguf`` package (no download): 2 layers, hidden size 16,
float32 tensors and a byte-level BPE tokenizer (256 byte tokens, one merge, EOS), so any text tokenizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

HIDDEN, FFN, LAYERS = 16, 32, 2


def write_tiny_gguf(path: Path, seed: int = 0, add_bos: bool | None = None) -> dict[str, np.ndarray]:
    """A tiny Llama GGUF (float32 tensors) with a byte-level BPE tokenizer; returns its tensors.
    ``add_bos``: the file's ``tokenizer.ggml.add_bos_token`` flag (None: the file has none)."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    byte_chars = bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)] + ["ab", "<|endoftext|>"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(LAYERS)
    w.add_context_length(64)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * (vocab - 1) + [3])
    w.add_token_scores([0.0] * vocab)
    w.add_token_merges(["a b"])
    w.add_bos_token_id(vocab - 1)
    w.add_eos_token_id(vocab - 1)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    shapes = {
        "token_embd.weight": (vocab, HIDDEN),
        "output_norm.weight": (HIDDEN,),
        "output.weight": (vocab, HIDDEN),
    }
    for i in range(LAYERS):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (HIDDEN,),
            f"blk.{i}.ffn_norm.weight": (HIDDEN,),
            f"blk.{i}.attn_q.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.attn_k.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.attn_v.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.attn_output.weight": (HIDDEN, HIDDEN),
            f"blk.{i}.ffn_gate.weight": (FFN, HIDDEN),
            f"blk.{i}.ffn_up.weight": (FFN, HIDDEN),
            f"blk.{i}.ffn_down.weight": (HIDDEN, FFN),
        }
    tensors = {k: (rng.standard_normal(s) * 0.1).astype(np.float32) for k, s in shapes.items()}
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors
