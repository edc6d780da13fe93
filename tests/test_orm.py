"""The study's outcome reward model: near-miss answers, training rows and pairs, training, merging."""

from __future__ import annotations

import pytest

from bongain.grading.answers import extract_answer
from bongain.grading.compare import is_correct
from bongain.orm.data import near_misses, numeric_candidates
from bongain.tasks.generators import generate


@pytest.mark.parametrize("generator", ["add2d1d", "sub2d1d", "deccmp", "mul1"])
def test_near_misses_are_wrong_and_graded_wrong(generator: str) -> None:
    for question, gold in generate(generator)[:300]:
        cands = near_misses(question, gold, "number", 50, seed=0)
        assert cands, question
        assert len(set(cands)) == len(cands)
        for c in cands:
            # the grader reads the answer a policy would write (" 54") and calls it wrong
            assert not is_correct(extract_answer(f" {c}", "number", "fewshot"), gold, "number"), (question, c)


def test_near_misses_brute_force_small_cases() -> None:
    # 47 + 8 = 55: +-1, 2, 3, 10 units; digit edits of "55" (+-1 per digit, one dropped); the operands
    assert numeric_candidates("What is 47 + 8?", "55") == {
        "56", "54", "57", "53", "58", "52", "65", "45", "5", "47", "8",
    }  # fmt: skip
    # decimal gold: units of its last digit (0.1); the other number of the question is a candidate
    cands = numeric_candidates("Which is larger: 3.7 or 3.65?", "3.7")
    assert {"3.65", "3.6", "3.8", "4.7", "2.7", "3", "0.7"} <= cands
    assert "3.7" not in cands


def test_near_misses_seeded_prefix_and_choice() -> None:
    q, g = "What is 47 + 8?", "55"
    full = near_misses(q, g, "number", 100, seed=3)
    assert near_misses(q, g, "number", 4, seed=3) == full[:4]
    assert sorted(full) == sorted(numeric_candidates(q, g))
    assert near_misses(q, g, "number", 100, seed=4) != full  # another seed, another order
    assert sorted(near_misses("Pick one", "b", "choice", 9, seed=0)) == ["A", "C", "D", "E"]
    assert near_misses("Simplify", "x+1", "math", 5, seed=0) == []
    with pytest.raises(ValueError, match="answer_type"):
        near_misses(q, g, "essay", 3, seed=0)


def test_near_miss_rows_label_with_the_grader() -> None:
    import polars as pl

    from bongain.orm.data import near_miss_rows

    tasks = pl.DataFrame(
        {
            "task": ["t", "t"],
            "split": ["rm_train"] * 2,
            "prompt_id": ["t-1", "t-2"],
            "question": ["What is 47 + 8?", "Which is larger: 3.7 or 3.65?"],
            "gold": ["55", "3.7"],
            "answer_type": ["number", "number"],
        }
    )
    rows = near_miss_rows(tasks, k=3, seed=0)
    assert rows.height == 2 * (1 + 3)
    gold = rows.filter(pl.col("source") == "gold")
    assert gold["completion"].to_list() == [" 55", " 3.7"] and gold["correct"].all()
    miss = rows.filter(pl.col("source") == "near_miss")
    assert not miss["correct"].any()
    assert miss.group_by("prompt_id").len()["len"].to_list() == [3, 3]


def test_preference_pairs_same_question_every_rejected_once() -> None:
    from bongain.orm.data import OrmDataError, preference_pairs

    q = ["a", "a", "a", "b", "b", "c"]
    ok = [True, False, False, True, False, False]  # c has no correct row: never paired
    pairs = preference_pairs(q, ok, 3, seed=0)
    assert sorted(r for _, r in pairs) == [1, 2, 4]
    assert all(q[c] == q[r] and ok[c] and not ok[r] for c, r in pairs)
    longer = preference_pairs(q, ok, 7, seed=0)
    assert longer[:3] == pairs and longer[3:6] == pairs and longer[6] == pairs[0]
    assert preference_pairs(q, ok, 3, seed=0) == pairs  # seeded
    with pytest.raises(OrmDataError, match="both a correct and an incorrect"):
        preference_pairs(["a", "b"], [True, False], 2, seed=0)
