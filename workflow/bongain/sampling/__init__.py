"""Rule files model.smk and sample.smk: model preparation, prompts, sampling backends, shards."""
