"""Rule file score.smk: the offline verifier and pretrained reward models behind one registry."""
