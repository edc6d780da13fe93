"""Test doubles (FAKES, named as such): the vLLM 0.33 offline API (a sampling fake LM), huggingface_hub's
snapshot_download, and a tiny tokenizer built in code."""
