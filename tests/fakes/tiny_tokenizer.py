"""A tiny word-level HF tokenizer built in code (no download), with a BOS-adding post-processor and a
minimal chat template that starts with the BOS text, like Llama-3's."""

from __future__ import annotations

from typing import Any

SPECIALS = [
    "<pad>",
    "<s>",
    "</s>",
    "<unk>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|eot|>",
    "<extra_0>",
]
WORDS = [str(i) for i in range(100)] + (
    "what is the answer step so first then add and + - * = ? . , : a b c d e f g h i j k l m n o p q r s t "
    "u v w x y z please reason by boxed question"
).split()

# {{ bos_token }} first, like Llama-3: rendered text carries the BOS, so tokenising it with special
# tokens would give a double BOS
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|eot|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tokenizer(*, pad: bool = True) -> Any:
    """The tokenizer; ``pad=False`` leaves ``pad_token`` unset (the id 0 '<pad>' still exists)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    tk = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tk.decoder = decoders.WordPiece()
    tk.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>" if pad else None,
        additional_special_tokens=SPECIALS[4:],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
