"""Per-cell statistics for rules features.smk and gains.smk: estimators, validation features, gain curves."""
