"""Names shared by every stage, each defined once here.

Other modules import these; none writes them out again. The config schema
(``workflow/schemas/config.schema.yaml``) repeats the enums for validation, and ``tests/test_config.py``
checks that the two agree.
"""

from __future__ import annotations

#: The three coordinates of a cell, in the order used by paths, sorts and joins.
CELL_KEYS: tuple[str, ...] = ("model", "method", "task")

#: The block post-training recipes learn from (``rft`` and ``dpo`` also sample the base model on it).
POSTTRAIN: str = "posttrain"

#: The blocks a task is carved into, in carving order. ``exemplars`` feeds few-shot prompts only;
#: ``posttrain`` comes last so that adding it never moves a question of the blocks before it.
BLOCKS: tuple[str, ...] = ("exemplars", "verifier_train", "validation", "test", POSTTRAIN)

#: The evaluation splits, sampled and graded for the cells (every block but ``exemplars`` and ``posttrain``).
SPLITS: tuple[str, ...] = ("verifier_train", "validation", "test")

#: Every block that the sample and grade rules may run on.
SAMPLED_SPLITS: tuple[str, ...] = (*SPLITS, POSTTRAIN)

#: How a gold answer and an extracted answer are compared (grading).
ANSWER_TYPES: tuple[str, ...] = ("number", "choice", "math")

#: How a question becomes a prompt (sampling) and where the answer is read from (grading).
PROMPT_FORMATS: tuple[str, ...] = ("fewshot", "chat")

#: Outcome of grading one sample: ``ok`` (an answer was extracted and compared), ``no_answer``,
#: ``timeout`` (the equivalence check ran past ``grading.timeout_s``) or ``error``.
GRADE_STATUSES: tuple[str, ...] = ("ok", "no_answer", "timeout", "error")
#: Scoring status of a sample (scores table): scored, or its reward-model input is over the RM's length limit.
SCORE_STATUSES: tuple[str, ...] = ("ok", "too_long")
