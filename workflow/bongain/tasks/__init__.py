"""Task tables of rule file tasks.smk: built-in generators, JSONL and hub sources, disjoint split carving."""
