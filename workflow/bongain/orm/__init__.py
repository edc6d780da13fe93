"""The study's trained outcome reward model (kind ``orm``): training data from prompts that are never
validation or test prompts (:mod:`.data`), training with TRL + PEFT and merging into a plain
sequence-classification checkpoint (:mod:`.train`)."""
