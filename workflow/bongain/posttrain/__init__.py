"""Post-training recipes (rule file ``workflow/rules/posttrain.smk``): training data per recipe
(:mod:`.data`), LoRA training with TRL + PEFT (:mod:`.train`), merging an adapter into a plain checkpoint
(:mod:`.merge`), and which adapters a config needs (:mod:`.recipes`)."""
