"""Test doubles: a recorded fake of the vLLM 0.33 offline API and a tiny tokenizer built in code."""
