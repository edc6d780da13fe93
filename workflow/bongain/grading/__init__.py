"""Answer extraction and correctness of rule file grade.smk."""
