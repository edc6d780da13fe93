from __future__ import annotations

import threading
import time

import polars as pl
import pytest

from bongain.grading.answers import extract_answer, normalize_number
from bongain.grading.compare import GradingTimeout, call_with_timeout, grade_frame, grade_one, is_correct
from bongain.io import conform

# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("0.50", "0.5"),
        ("7.0", "7"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("+5", "5"),
        ("1,234", "1234"),
        ("1,234,567.80", "1234567.8"),
        ("100", "100"),
        ("1000.000", "1000"),
        (".5", "0.5"),
        ("-3", "-3"),
        (" 12 ", "12"),
        ("12a", None),
        ("1,23", None),
        ("", None),
        ("1e5", None),
    ],
)
def test_normalize_number(raw: str, norm: str | None) -> None:
    assert normalize_number(raw) == norm


# ---------------------------------------------------------------- extraction

FEWSHOT_NUMBER = [
    ("3\n\nQ: What is 4 + 4?\nA: 8", "3"),
    (" 12", "12"),
    ("The answer is 7.", "7"),
    ("I think 5 + 3 = 8", "5"),
    ("no number", None),
    ("", None),
    ("\n5", None),  # only the first line counts
    ("1,234", "1234"),
    ("-3", "-3"),
    ("0.50", "0.5"),
    ("$1,000 dollars", "1000"),
    ("5-3", "5"),
    ("x = -2.0", "-2"),
    ("18th", "18"),
    ("+4", "4"),
]

CHAT_NUMBER = [
    ("I think 5 + 3 = 8", "8"),
    ("The answer is 7.", "7"),
    ("\\boxed{42}", "42"),
    ("Let me compute: 6 * 7 = 42. So the answer is \\boxed{42}. Hope 1 helps", "42"),
    ("first \\boxed{1} then \\boxed{2} and 3", "2"),
    ("\\boxed{\\text{none}} but 5", "5"),  # no number in the box: fall back to the text
    ("no number", None),
    ("Sum is 1,234.\nDone.", "1234"),
    ("It is -3", "-3"),
    ("0.50 is larger", "0.5"),
    ("5-3=2", "2"),
    ("Step 1: 2+2=4\nStep 2: 4*2 = 8\n", "8"),
]


@pytest.mark.parametrize(("completion", "answer"), FEWSHOT_NUMBER)
def test_extract_number_fewshot(completion: str, answer: str | None) -> None:
    assert extract_answer(completion, "number", "fewshot") == answer


@pytest.mark.parametrize(("completion", "answer"), CHAT_NUMBER)
def test_extract_number_chat(completion: str, answer: str | None) -> None:
    assert extract_answer(completion, "number", "chat") == answer


@pytest.mark.parametrize(
    ("completion", "fmt", "answer"),
    [
        (" B", "fewshot", "B"),
        (" (C) because\nA", "fewshot", "C"),
        ("The answer is D. Also E.", "fewshot", "D"),
        ("I think it is B, no wait, C.", "chat", "C"),
        ("The answer is \\boxed{A}. Because B", "chat", "A"),
        ("none here", "chat", None),
        ("about bees", "fewshot", None),
    ],
)
def test_extract_choice(completion: str, fmt: str, answer: str | None) -> None:
    assert extract_answer(completion, "choice", fmt) == answer


@pytest.mark.parametrize(
    ("completion", "fmt", "answer"),
    [
        ("so $x = \\boxed{\\frac{1}{2}}$.", "chat", "\\frac{1}{2}"),
        ("\\boxed{ 3 }", "chat", "3"),
        ("\\boxed{0.50}", "chat", "0.5"),
        ("it is 3/4 or maybe 1/2", "chat", "1/2"),
        ("it is 3 / 4 here", "chat", "3/4"),
        ("the total is 12 apples", "chat", "12"),
        (" 3/4\nQ: next", "fewshot", "3/4"),
        ("nothing", "chat", None),
        ("\\boxed{unbalanced", "chat", None),
    ],
)
def test_extract_math(completion: str, fmt: str, answer: str | None) -> None:
    assert extract_answer(completion, "math", fmt) == answer


def test_equal_answers_give_equal_strings() -> None:
    outs = {
        extract_answer(c, "number", "chat") for c in ["0.5", "0.50", "+0.5", "it is 0.500", "\\boxed{0.5}"]
    }
    assert outs == {"0.5"}


def test_extract_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="answer_type"):
        extract_answer("1", "text", "chat")
    with pytest.raises(ValueError, match="prompt_format"):
        extract_answer("1", "number", "zero-shot")


# ---------------------------------------------------------------- equivalence


def test_is_correct_number() -> None:
    assert is_correct("7", "7.0", "number")
    assert is_correct("0.5", "0.50", "number")
    assert is_correct("1234", "1,234", "number")
    assert not is_correct("0.65", "0.7", "number")
    assert not is_correct(None, "7", "number")
    assert not is_correct("x", "7", "number")
    # Decimal, not float: these differ although they are equal as floats
    assert not is_correct("0.30000000000000001", "0.3", "number")
    with pytest.raises(ValueError, match="not a number"):
        is_correct("7", "seven", "number")


def test_is_correct_choice() -> None:
    assert is_correct("b", "B", "choice")
    assert is_correct("B", "(b)", "choice")
    assert not is_correct("A", "B", "choice")


def test_is_correct_math() -> None:
    assert is_correct("\\frac{1}{2}", "0.5", "math")
    assert is_correct("1/2", "\\frac12", "math")
    assert is_correct("(x+1)^2", "x^2+2x+1", "math")
    assert is_correct("18", "18", "math")
    assert not is_correct("\\frac{1}{3}", "0.5", "math")
    assert not is_correct("\\sqrt{", "2", "math")


# ---------------------------------------------------------------- safety


def test_pathological_latex_times_out_or_errors() -> None:
    answer, status, correct = grade_one("\\boxed{9^{9^{9^{9}}}}", "1", "math", "chat", timeout_s=0.5)
    assert answer == "9^{9^{9^{9}}}"
    assert status in ("timeout", "error") and correct is False


def test_timeout_leaves_no_alarm_behind() -> None:
    grade_one("\\boxed{10^{10^{10}}}", "2", "math", "chat", timeout_s=0.3)
    time.sleep(0.4)  # a stale SIGALRM would raise here
    assert grade_one("\\boxed{2}", "2", "math", "chat", timeout_s=1) == ("2", "ok", True)


def test_call_with_timeout_off_main_thread() -> None:
    result: list[object] = []

    def run() -> None:
        try:
            call_with_timeout(lambda: time.sleep(5), 0.2)
        except GradingTimeout as err:
            result.append(err)
        result.append(call_with_timeout(lambda: 41 + 1, 1.0))

    t = threading.Thread(target=run)
    t.start()
    t.join(3)
    assert not t.is_alive()
    assert isinstance(result[0], GradingTimeout) and result[1] == 42


def test_call_with_timeout_reraises() -> None:
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 1.0)


def test_grade_one_statuses() -> None:
    assert grade_one(" 8\nQ:", "8", "number", "fewshot") == ("8", "ok", True)
    assert grade_one(" 9", "8", "number", "fewshot") == ("9", "ok", False)
    assert grade_one(" nothing", "8", "number", "fewshot") == (None, "no_answer", False)
    assert grade_one("5", "eight", "number", "chat") == ("5", "error", False)


# ---------------------------------------------------------------- frames


def tasks_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task": ["add1", "add1"],
            "split": ["test", "test"],
            "prompt_id": ["add1-00000", "add1-00001"],
            "question": ["What is 3 + 5?", "What is 2 + 2?"],
            "gold": ["8", "4"],
            "answer_type": ["number", "number"],
        }
    )


def samples_frame(pids: list[str], completions: list[str], task: str = "add1") -> pl.DataFrame:
    n = len(pids)
    return pl.DataFrame(
        {
            "model": ["m"] * n,
            "method": ["base"] * n,
            "task": [task] * n,
            "split": ["test"] * n,
            "prompt_id": pids,
            "sample_idx": pl.Series(list(range(n)), dtype=pl.Int32),
            "prompt": ["p"] * n,
            "completion": completions,
        }
    )


def test_grade_frame() -> None:
    s = samples_frame(
        ["add1-00001", "add1-00000", "add1-00000", "add1-00000", "add1-00001"],
        [" 4", " 8\nQ: x", " 7", "no", " 4.0"],
    )
    g = grade_frame(s, tasks_frame(), "fewshot", timeout_s=1.0)
    conform(g, "grades")
    assert g.columns == [
        "model",
        "method",
        "task",
        "split",
        "prompt_id",
        "sample_idx",
        "answer",
        "status",
        "correct",
    ]
    assert g["prompt_id"].to_list() == s["prompt_id"].to_list()  # sample order kept
    assert g["answer"].to_list() == ["4", "8", "7", None, "4"]
    assert g["status"].to_list() == ["ok", "ok", "ok", "no_answer", "ok"]
    assert g["correct"].to_list() == [True, True, False, False, True]
    assert g.schema["sample_idx"] == pl.Int32


def test_grade_frame_math_and_chat() -> None:
    t = tasks_frame().with_columns(
        pl.lit("math").alias("answer_type"), pl.Series("gold", ["\\frac{16}{2}", "4"])
    )
    s = samples_frame(["add1-00000"] * 3, ["so \\boxed{8}", "It is 8.0", "\\boxed{9^{9^{9^{9}}}}"])
    g = grade_frame(s, t, "chat", timeout_s=0.5)
    assert g["correct"].to_list() == [True, True, False]
    assert g["status"][2] in ("timeout", "error")


def test_grade_frame_unknown_prompt() -> None:
    s = samples_frame(["add1-00000", "add1-00099"], [" 8", " 1"])
    with pytest.raises(ValueError, match="add1-00099"):
        grade_frame(s, tasks_frame(), "fewshot", timeout_s=1.0)


def test_grade_frame_other_task() -> None:
    s = samples_frame(["add1-00000"], [" 8"], task="mul1")
    with pytest.raises(ValueError, match="add1-00000"):
        grade_frame(s, tasks_frame(), "fewshot", timeout_s=1.0)


def test_grade_frame_bad_tasks() -> None:
    s = samples_frame(["add1-00000"], [" 8"])
    with pytest.raises(ValueError, match="not unique"):
        grade_frame(s, pl.concat([tasks_frame(), tasks_frame()]), "fewshot", timeout_s=1.0)
    with pytest.raises(ValueError, match="add1-00000"):
        grade_frame(s, tasks_frame().with_columns(pl.lit("eight").alias("gold")), "fewshot", timeout_s=1.0)
    with pytest.raises(ValueError, match="missing column"):
        grade_frame(s.drop("completion"), tasks_frame(), "fewshot", timeout_s=1.0)
