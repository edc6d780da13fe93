"""Cross-cell statistics of rule file fit.smk: cell table, ridge fit and predictor comparison, gain curve,
stability selection, concentration bound, screening."""
