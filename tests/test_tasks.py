from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from bongain.constants import BLOCKS, SPLITS
from bongain.io import conform
from bongain.tasks.generators import GENERATORS, generate
from bongain.tasks.sources import (
    HFDataset,
    TaskSpec,
    load_hf_records,
    load_jsonl,
    parse_gold,
    records_from_rows,
)
from bongain.tasks.splits import build_split, build_splits, fewshot_exemplars, seeded_order

GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k"
needs_gsm8k = pytest.mark.skipif(
    not (GSM8K / "train.jsonl").is_file() or not (GSM8K / "test.jsonl").is_file(),
    reason=f"GSM8K not found at {GSM8K} (shared data sits beside the repo)",
)

SIZES = {"exemplars": 5, "verifier_train": 20, "validation": 20, "test": 30}


def spec(gen: str) -> TaskSpec:
    return TaskSpec.from_config({"generator": gen, "answer_type": "number"})


# ---------------------------------------------------------------- generators


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_generator_space_has_no_duplicates_and_exact_golds(gen: str) -> None:
    items = generate(gen)
    assert len({q for q, _ in items}) == len(items)
    for q, gold in items:
        assert len(q) < 40
        if q.startswith("What is "):
            expr = q.removeprefix("What is ").removesuffix("?")
            assert str(eval(expr)) == gold  # arithmetic on single-digit literals only
    assert generate(gen) == items  # deterministic


def test_space_sizes() -> None:
    assert {g: len(generate(g)) for g in GENERATORS} == {
        "add1": 100,
        "sub1": 100,
        "mul1": 100,
        "add2d1d": 900,
        "sub2d1d": 900,
        "deccmp": 16200,
    }


def test_sub1_never_negative() -> None:
    assert all(int(g) >= 0 for _, g in generate("sub1"))


def test_deccmp_gold_is_the_larger_as_written() -> None:
    tricky = 0
    for q, gold in generate("deccmp"):
        body = q.removeprefix("Which is larger: ").removesuffix("?")
        x, y = body.split(" or ")
        assert len(x.split(".")[1]) != len(y.split(".")[1])
        assert Decimal(x) != Decimal(y)
        assert gold == (x if Decimal(x) > Decimal(y) else y)
        longer = x if len(x) > len(y) else y
        tricky += gold != longer
    assert 0 < tricky < len(generate("deccmp"))
    assert ("Which is larger: 0.7 or 0.65?", "0.7") in generate("deccmp")


def test_unknown_generator() -> None:
    with pytest.raises(ValueError, match="unknown generator"):
        TaskSpec.from_config({"generator": "nope", "answer_type": "number"})


# ---------------------------------------------------------------- splits


def test_splits_are_disjoint_sized_and_schema_conform() -> None:
    blocks = build_splits("add1", spec("add1"), SIZES, seed=0)
    assert set(blocks) == set(BLOCKS)
    seen: set[str] = set()
    for b, df in blocks.items():
        assert df.height == {**SIZES, "posttrain": 0}[b]
        assert df["question"].n_unique() == df.height
        assert df["prompt_id"].n_unique() == df.height
        assert seen.isdisjoint(df["question"].to_list())
        seen |= set(df["question"].to_list())
        assert (df["split"] == b).all() and (df["task"] == "add1").all()
        conform(df, "tasks")


def test_build_split_matches_build_splits_and_is_deterministic() -> None:
    for split in SPLITS:
        a = build_split("t", spec("add2d1d"), split, SIZES, seed=3)
        b = build_split("t", spec("add2d1d"), split, SIZES, seed=3)
        assert a.equals(b)
        assert a.equals(build_splits("t", spec("add2d1d"), SIZES, seed=3)[split])
    with pytest.raises(ValueError, match="unknown split"):
        build_split("t", spec("add1"), "exemplars", SIZES, seed=0)


def test_seed_changes_the_draw() -> None:
    a = build_split("t", spec("add2d1d"), "test", SIZES, seed=1)["question"].to_list()
    b = build_split("t", spec("add2d1d"), "test", SIZES, seed=2)["question"].to_list()
    assert a != b


def test_prompt_ids_stable_when_later_sizes_change() -> None:
    small = build_splits("t", spec("add2d1d"), SIZES, seed=0)
    big = build_splits("t", spec("add2d1d"), {**SIZES, "validation": 50, "test": 100}, seed=0)
    for b in ("exemplars", "verifier_train"):
        assert small[b].equals(big[b])
    # the first validation prompts are the same too: blocks only grow at their end
    assert big["validation"].head(20).equals(small["validation"])
    assert small["test"]["prompt_id"][0] == "t-00045"  # 5 + 20 + 20: index in the permuted space


def test_exemplars_never_in_a_split() -> None:
    ex = fewshot_exemplars("add1", spec("add1"), 5, seed=0)
    blocks = build_splits("add1", spec("add1"), SIZES, seed=0)
    assert ex == list(zip(blocks["exemplars"]["question"], blocks["exemplars"]["gold"], strict=True))
    questions = {q for q, _ in ex}
    for split in SPLITS:
        assert questions.isdisjoint(blocks[split]["question"].to_list())


def test_space_too_small_names_task_and_sizes() -> None:
    with pytest.raises(ValueError, match=r"task 'sub1'.*100 questions.*= 105"):
        build_splits("sub1", spec("sub1"), {**SIZES, "test": 60}, seed=0)
    # exactly the whole space is fine
    blocks = build_splits("sub1", spec("sub1"), {**SIZES, "test": 55}, seed=0)
    assert sum(df.height for df in blocks.values()) == 100


def test_sizes_must_name_every_block() -> None:
    with pytest.raises(ValueError, match="missing"):
        build_splits("add1", spec("add1"), {"verifier_train": 5, "validation": 5, "test": 5}, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        build_splits("add1", spec("add1"), {**SIZES, "test": -1}, seed=0)


def test_seeded_order_is_a_permutation() -> None:
    keys = [str(i) for i in range(50)]
    order = seeded_order(keys, 7)
    assert sorted(order) == list(range(50)) and order != list(range(50))
    assert order == seeded_order(keys, 7)


# ---------------------------------------------------------------- config


def test_from_config_shapes(tmp_path: Path) -> None:
    s = TaskSpec.from_config({"jsonl": "data/x.jsonl", "answer_type": "number"}, base_dir=tmp_path)
    assert s.jsonl == tuple((b, str(tmp_path / "data/x.jsonl")) for b in BLOCKS)
    files = {
        "exemplars": "/a.jsonl",
        "verifier_train": "/a.jsonl",
        "validation": "/a.jsonl",
        "test": "/b.jsonl",
    }
    s = TaskSpec.from_config({"jsonl": files, "answer_type": "math", "gold_format": "gsm8k"})
    assert dict(s.jsonl or ()) == {**files, "posttrain": files["verifier_train"]}
    with pytest.raises(ValueError, match="must name a file for each"):
        TaskSpec.from_config({"jsonl": {"test": "/b.jsonl"}, "answer_type": "number"})
    with pytest.raises(ValueError, match="unknown task config key"):
        TaskSpec.from_config({"generator": "add1", "answer_type": "number", "n": 3})
    with pytest.raises(ValueError, match="exactly one"):
        TaskSpec.from_config({"answer_type": "number"})
    with pytest.raises(ValueError, match="answer_type"):
        TaskSpec.from_config({"generator": "add1", "answer_type": "text"})


# ---------------------------------------------------------------- JSONL


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_parse_gold() -> None:
    assert parse_gold("work #### 1,234 ", "gsm8k") == "1234"
    assert parse_gold("a #### b #### 7", "gsm8k") == "7"
    assert parse_gold("no marker", "gsm8k") == ""
    assert parse_gold(" B ", "plain") == "B"


def test_load_jsonl_ok(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "d.jsonl", [{"q": "one?", "a": 1, "id": "x"}, "", {"q": "two?", "a": "2", "id": 7}]
    )
    recs = load_jsonl(p, "q", "a", id_key="id")
    assert [(r.line, r.id, r.question, r.gold) for r in recs] == [
        (1, "x", "one?", "1"),
        (3, "7", "two?", "2"),
    ]


@pytest.mark.parametrize(
    ("rows", "kwargs", "line", "message"),
    [
        ([{"q": "a?", "a": "1"}, "{not json"], {}, 2, "invalid JSON"),
        ([{"q": "a?", "a": "1"}, "[1, 2]"], {}, 2, "expected a JSON object"),
        ([{"q": "a?", "a": "1"}, {"a": "2"}], {}, 2, "missing or empty question"),
        ([{"q": "  ", "a": "2"}], {}, 1, "missing or empty question"),
        ([{"q": "a?", "a": "1"}, {"q": "b?", "a": ""}], {}, 2, "missing or empty gold"),
        ([{"q": "a?"}], {}, 1, "missing or empty gold"),
        ([{"q": "a?", "a": "work, no marker"}], {"gold_format": "gsm8k"}, 1, "missing or empty gold"),
        (
            [{"q": "a?", "a": "1", "id": 1}, {"q": "b?", "a": "2", "id": "1"}],
            {"id_key": "id"},
            2,
            "duplicate id",
        ),
        ([{"q": "a?", "a": "1"}, {"q": "b?", "a": "2"}], {"id_key": "id"}, 1, "missing or empty id"),
        ([{"q": "a?", "a": "1"}, {"q": "b?", "a": "2"}, {"q": "a?", "a": "3"}], {}, 3, "duplicate question"),
    ],
)
def test_load_jsonl_errors_name_file_and_line(
    tmp_path: Path, rows: list[object], kwargs: dict[str, str], line: int, message: str
) -> None:
    p = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=message) as err:
        load_jsonl(p, "q", "a", **kwargs)
    assert f"{p}:{line}:" in str(err.value)


def test_load_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_jsonl(tmp_path / "nope.jsonl", "q", "a")


def test_jsonl_single_file_carved_like_generated(tmp_path: Path) -> None:
    rows = [{"q": f"What is {i} + 1?", "a": str(i + 1)} for i in range(30)]
    p = write_jsonl(tmp_path / "small.jsonl", rows)
    s = TaskSpec.from_config(
        {"jsonl": str(p), "question_key": "q", "answer_key": "a", "answer_type": "number"}
    )
    sizes = {"exemplars": 2, "verifier_train": 8, "validation": 10, "test": 10}
    blocks = build_splits("small", s, sizes, seed=0)
    allq = pl.concat(list(blocks.values()))
    assert allq["question"].n_unique() == 30 and allq["prompt_id"].n_unique() == 30
    assert all(pid.startswith("small-small-") for pid in allq["prompt_id"])
    with pytest.raises(ValueError, match="task 'small'"):
        build_splits("small", s, {**sizes, "test": 11}, seed=0)


def test_jsonl_files_overlap_is_an_error(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", [{"q": f"q{i}?", "a": "1"} for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"q": "q3?", "a": "1"}, {"q": "other?", "a": "2"}])
    files = {"exemplars": str(a), "verifier_train": str(a), "validation": str(a), "test": str(b)}
    s = TaskSpec.from_config(
        {"jsonl": files, "question_key": "q", "answer_key": "a", "answer_type": "number"}
    )
    sizes = {"exemplars": 1, "verifier_train": 4, "validation": 5, "test": 2}
    with pytest.raises(ValueError, match="appears in both"):
        build_splits("ov", s, sizes, seed=0)


def test_jsonl_gold_must_fit_answer_type(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "w.jsonl", [{"q": "a?", "a": "seven"}])
    s = TaskSpec.from_config(
        {"jsonl": str(p), "question_key": "q", "answer_key": "a", "answer_type": "number"}
    )
    with pytest.raises(ValueError, match="not a number"):
        build_splits("w", s, {"exemplars": 0, "verifier_train": 0, "validation": 0, "test": 1}, seed=0)


@needs_gsm8k
def test_gsm8k_real_files() -> None:
    test = load_jsonl(GSM8K / "test.jsonl", "question", "answer", gold_format="gsm8k")
    train = load_jsonl(GSM8K / "train.jsonl", "question", "answer", gold_format="gsm8k")
    assert (len(train), len(test)) == (7473, 1319)
    assert test[0].gold == "18" and test[0].question.startswith("Janet")
    assert all("," not in r.gold and r.gold for r in train + test)


@needs_gsm8k
def test_gsm8k_splits_from_two_files() -> None:
    tr, te = str(GSM8K / "train.jsonl"), str(GSM8K / "test.jsonl")
    cfg = {
        "jsonl": {"exemplars": tr, "verifier_train": tr, "validation": tr, "test": te},
        "gold_format": "gsm8k",
        "answer_type": "number",
    }
    s = TaskSpec.from_config(cfg)
    sizes = {"exemplars": 8, "verifier_train": 200, "validation": 100, "test": 100}
    blocks = build_splits("gsm8k", s, sizes, seed=0)
    assert {b: df.height for b, df in blocks.items()} == {**sizes, "posttrain": 0}
    assert all(pid.startswith("gsm8k-test-") for pid in blocks["test"]["prompt_id"])
    assert all(pid.startswith("gsm8k-train-") for pid in blocks["validation"]["prompt_id"])
    # the whole test file fits; one more is an error naming the file
    with pytest.raises(ValueError, match=r"test\.jsonl has 1319 questions"):
        build_splits("gsm8k", s, {**sizes, "test": 1320}, seed=0)
    ex = fewshot_exemplars("gsm8k", s, 8, seed=0)
    assert [q for q, _ in ex] == blocks["exemplars"]["question"].to_list()


@needs_gsm8k
def test_gsm8k_one_file_carved() -> None:
    s = TaskSpec.from_config(
        {"jsonl": str(GSM8K / "test.jsonl"), "gold_format": "gsm8k", "answer_type": "number"}
    )
    sizes = {"exemplars": 4, "verifier_train": 300, "validation": 300, "test": 300}
    blocks = build_splits("g", s, sizes, seed=5)
    allq = pl.concat(list(blocks.values()))
    assert allq["question"].n_unique() == 904


# ---------------------------------------------------------------- hub datasets (offline: rows in memory)

ARC_ROWS = [
    {
        "id": "Mercury_1",
        "question": "Which gas do plants take in?",
        "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]},
        "answerKey": "B",
    },
    {  # numeric labels, as some ARC rows have
        "id": "Mercury_2",
        "question": "How many legs has an insect?",
        "choices": {"text": ["four", "six", "eight"], "label": ["1", "2", "3"]},
        "answerKey": "2",
    },
    {
        "id": "Mercury_3",
        "question": "Pick E.",
        "choices": {"text": ["a", "b", "c", "d", "e"], "label": ["A", "B", "C", "D", "E"]},
        "answerKey": "E",
    },
]


def arc_spec(**kw: object) -> HFDataset:
    cfg = {
        "path": "allenai/ai2_arc",
        "name": "ARC-Challenge",
        "split": "test",
        "answer_field": "answerKey",
        "id_field": "id",
        "choices_field": "choices",
        **kw,
    }
    return HFDataset.from_config(cfg)


def test_hf_multiple_choice_rows_become_lettered_questions() -> None:
    recs = records_from_rows(ARC_ROWS, arc_spec(), "test")
    assert [r.gold for r in recs] == ["B", "B", "E"]
    assert [r.id for r in recs] == ["Mercury_1", "Mercury_2", "Mercury_3"]
    assert recs[0].question == (
        "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon"
    )
    assert recs[1].question.endswith("\nA. four\nB. six\nC. eight")  # numeric labels shown as letters
    assert [r.line for r in recs] == [0, 1, 2]


def test_hf_choices_as_list_with_index_gold() -> None:
    rows = [
        {"question": "2+2?", "choices": ["3", "4"], "answer": 1},
        {"question": "1+1?", "choices": ["2", "5"], "answer": "A"},
    ]
    recs = records_from_rows(rows, arc_spec(answer_field="answer", id_field=None), "test")
    assert [(r.gold, r.question) for r in recs] == [("B", "2+2?\nA. 3\nB. 4"), ("A", "1+1?\nA. 2\nB. 5")]


def test_hf_plain_and_gsm8k_gold() -> None:
    spec = HFDataset.from_config(
        {"path": "openai/gsm8k", "name": "main", "split": "train", "gold_format": "gsm8k"}
    )
    rows = [{"question": " Q1 ", "answer": "so 2+2=4\n#### 1,004"}, {"question": "Q2", "answer": "#### 7"}]
    recs = records_from_rows(rows, spec, "train")
    assert [(r.question, r.gold, r.id) for r in recs] == [("Q1", "1004", None), ("Q2", "7", None)]
    math = HFDataset.from_config(
        {
            "path": "HuggingFaceH4/MATH-500",
            "split": "test",
            "question_field": "problem",
            "id_field": "unique_id",
        }
    )
    recs = records_from_rows(
        [{"problem": "x?", "answer": "\\frac{1}{2}", "unique_id": "test/a/1.json"}], math, "test"
    )
    assert recs[0].gold == "\\frac{1}{2}" and recs[0].id == "test/a/1.json"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "", "answer": "1"}, r"row 1: missing or empty question \(field 'question'\)"),
        ({"question": "Q", "answer": None}, r"row 1: missing or empty gold answer"),
        ({"question": "Q", "answer": "no marker"}, r"row 1: missing or empty gold answer .*gsm8k"),
    ],
)
def test_hf_row_errors_name_dataset_split_and_row(row: dict, message: str) -> None:
    spec = HFDataset.from_config(
        {"path": "openai/gsm8k", "name": "main", "split": "train", "gold_format": "gsm8k"}
    )
    with pytest.raises(ValueError, match=r"hf_dataset openai/gsm8k \(main\) split 'train' " + message):
        records_from_rows([{"question": "ok", "answer": "#### 1"}, row], spec, "train")


def test_hf_choice_errors() -> None:
    bad_gold = {**ARC_ROWS[0], "answerKey": "Z"}
    with pytest.raises(ValueError, match=r"row 0: gold 'Z' is not one of the choice labels"):
        records_from_rows([bad_gold], arc_spec(), "test")
    six = {**ARC_ROWS[0], "choices": {"text": list("abcdef"), "label": list("ABCDEF")}}
    with pytest.raises(ValueError, match=r"row 0: 6 choices; 2 to 5"):
        records_from_rows([six], arc_spec(), "test")
    ragged = {**ARC_ROWS[0], "choices": {"text": ["a", "b"], "label": ["A"]}}
    with pytest.raises(ValueError, match="1 choice labels but 2 texts"):
        records_from_rows([ragged], arc_spec(), "test")
    with pytest.raises(ValueError, match=r"row 1: duplicate id 'Mercury_1' \(first at row 0\)"):
        records_from_rows([ARC_ROWS[0], {**ARC_ROWS[1], "id": "Mercury_1"}], arc_spec(), "test")


def test_hf_repeated_question_is_dropped() -> None:
    rows = [ARC_ROWS[0], {**ARC_ROWS[0], "id": "other"}, ARC_ROWS[1]]
    recs = records_from_rows(rows, arc_spec(), "test")
    assert [r.id for r in recs] == ["Mercury_1", "Mercury_2"]


def test_hf_task_spec_from_config() -> None:
    cfg = {
        "answer_type": "choice",
        "hf_dataset": {
            "path": "allenai/ai2_arc",
            "name": "ARC-Challenge",
            "split": {
                "exemplars": "train",
                "verifier_train": "train",
                "validation": "validation",
                "test": "test",
            },
            "answer_field": "answerKey",
            "choices_field": "choices",
        },
    }
    s = TaskSpec.from_config(cfg)
    assert s.hf_dataset is not None and dict(s.hf_dataset.split)["validation"] == "validation"
    assert s.hf_dataset.source("exemplars") == s.hf_dataset.source("verifier_train")
    assert s.hf_dataset.source("test") != s.hf_dataset.source("validation")
    with pytest.raises(ValueError, match="unknown hf_dataset key"):
        TaskSpec.from_config({**cfg, "hf_dataset": {**cfg["hf_dataset"], "splt": "x"}})
    with pytest.raises(ValueError, match="must name a split for each"):
        TaskSpec.from_config({**cfg, "hf_dataset": {**cfg["hf_dataset"], "split": {"test": "test"}}})
    with pytest.raises(ValueError, match="'choices_field' is needed exactly when answer_type is 'choice'"):
        TaskSpec.from_config({**cfg, "answer_type": "number"})
    with pytest.raises(ValueError, match="exactly one"):
        TaskSpec.from_config({**cfg, "generator": "add1"})


@pytest.fixture()
def fake_datasets(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """A stand-in ``datasets`` module: records the load_dataset calls, serves rows from memory."""
    import sys
    import types

    calls: list[tuple] = []
    tables = {
        "train": [{"question": f"train q{i}", "answer": f"#### {i}"} for i in range(30)],
        "test": [{"question": f"test q{i}", "answer": f"#### {i}"} for i in range(12)],
    }

    def load_dataset(path, name=None, *, split, revision=None):
        calls.append((path, name, split, revision))
        if split not in tables:
            raise ValueError(f"Unknown split {split!r}")
        return list(tables[split])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    load_hf_records.cache_clear()
    yield calls
    load_hf_records.cache_clear()


def test_hf_task_builds_disjoint_splits_lazily(fake_datasets: list[tuple]) -> None:
    cfg = {
        "answer_type": "number",
        "hf_dataset": {
            "path": "openai/gsm8k",
            "name": "main",
            "revision": "abc123",
            "split": {"exemplars": "train", "verifier_train": "train", "validation": "train", "test": "test"},
            "gold_format": "gsm8k",
        },
    }
    spec = TaskSpec.from_config(cfg)
    assert fake_datasets == []  # nothing is loaded while the config is read (DAG-build time)
    sizes = {"exemplars": 3, "verifier_train": 10, "validation": 10, "test": 12}
    blocks = build_splits("gsm8k", spec, sizes, seed=0)
    assert sorted(set(fake_datasets)) == [
        ("openai/gsm8k", "main", "test", "abc123"),
        ("openai/gsm8k", "main", "train", "abc123"),
    ]
    assert {b: df.height for b, df in blocks.items()} == {**sizes, "posttrain": 0}
    assert all(pid.startswith("gsm8k-test-") for pid in blocks["test"]["prompt_id"])
    assert all(pid.startswith("gsm8k-train-") for pid in blocks["validation"]["prompt_id"])
    qs = pl.concat([blocks[b] for b in ("exemplars", "verifier_train", "validation")])["question"]
    assert qs.n_unique() == 23 and all(q.startswith("train") for q in qs)
    assert build_splits("gsm8k", spec, sizes, seed=0)["test"].equals(blocks["test"])  # deterministic
    with pytest.raises(ValueError, match=r"gsm8k \(main\) split 'train' at revision abc123 has 30 questions"):
        build_splits("gsm8k", spec, {**sizes, "validation": 18}, seed=0)
    bad = TaskSpec.from_config({**cfg, "hf_dataset": {**cfg["hf_dataset"], "split": "dev"}})
    with pytest.raises(ValueError, match=r"hf_dataset openai/gsm8k \(main\) split 'dev': could not load"):
        build_splits("gsm8k", bad, sizes, seed=0)


@needs_gsm8k
def test_hf_rows_of_gsm8k_match_the_jsonl_loader() -> None:
    """The hub copy of GSM8K has the JSONL's rows: both loaders give the same questions and golds."""
    path = GSM8K / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    spec = HFDataset.from_config(
        {"path": "openai/gsm8k", "name": "main", "split": "test", "gold_format": "gsm8k"}
    )
    hf = records_from_rows(rows, spec, "test")
    js = load_jsonl(path, "question", "answer", gold_format="gsm8k")
    assert [(r.question, r.gold) for r in hf] == [(r.question, r.gold) for r in js]


# ---------------------------------------------------------------- the posttrain block


@pytest.mark.parametrize("gen", sorted(GENERATORS))
def test_posttrain_block_moves_no_other_block(gen: str) -> None:
    without = build_splits("t", spec(gen), SIZES, seed=0)
    with_pt = build_splits("t", spec(gen), {**SIZES, "posttrain": 25}, seed=0)
    for block in BLOCKS:
        if block != "posttrain":
            assert with_pt[block].equals(without[block]), block
    assert without["posttrain"].height == 0 and with_pt["posttrain"].height == 25
    assert set(with_pt["posttrain"]["split"]) == {"posttrain"}
    others = pl.concat([with_pt[b] for b in BLOCKS if b != "posttrain"])
    assert not set(with_pt["posttrain"]["question"]) & set(others["question"])
    assert not set(with_pt["posttrain"]["prompt_id"]) & set(others["prompt_id"])


def test_posttrain_leaves_the_test_config_questions_where_they_were(repo: Path) -> None:
    """The test split of config/test.yaml, as carved before the posttrain block existed."""
    from bongain.config import load_config, split_sizes

    cfg = load_config(repo / "config" / "test.yaml")
    before = {
        "add1": ["What is 8 + 6?", "What is 3 + 2?", "What is 1 + 8?", "What is 8 + 3?"],
        "deccmp": [
            "Which is larger: 4.5 or 4.23?",
            "Which is larger: 5.4 or 5.27?",
            "Which is larger: 3.92 or 3.6?",
            "Which is larger: 3.8 or 3.74?",
        ],
    }
    for posttrain in (0, 20):
        sizes = {**split_sizes(cfg), "posttrain": posttrain}
        for task, questions in before.items():
            got = build_split(task, TaskSpec.from_config(cfg["tasks"][task]), "test", sizes, 0)
            assert got["question"].to_list() == questions


def test_posttrain_of_a_jsonl_mapping_defaults_to_the_verifier_train_file(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"q": f"train {i}?", "a": str(i)} for i in range(30)])
    test = write_jsonl(tmp_path / "test.jsonl", [{"q": f"test {i}?", "a": str(i)} for i in range(30)])
    files = {
        "exemplars": str(train),
        "verifier_train": str(train),
        "validation": str(test),
        "test": str(test),
    }
    cfg = {"question_key": "q", "answer_key": "a", "answer_type": "number"}
    s = TaskSpec.from_config({**cfg, "jsonl": files})
    assert dict(s.jsonl)["posttrain"] == str(train)
    sizes = {"exemplars": 2, "verifier_train": 8, "validation": 10, "test": 10}
    without = build_splits("m", s, sizes, seed=0)
    blocks = build_splits("m", s, {**sizes, "posttrain": 20}, seed=0)
    assert all(q.startswith("train ") for q in blocks["posttrain"]["question"])
    for block in ("exemplars", "verifier_train", "validation", "test"):
        assert blocks[block].equals(without[block])
    with pytest.raises(ValueError, match=r"train\.jsonl has 30 questions"):
        build_splits("m", s, {**sizes, "posttrain": 21}, seed=0)
    # an explicit posttrain file is taken as given
    explicit = TaskSpec.from_config({**cfg, "jsonl": {**files, "posttrain": str(test)}})
    assert all(
        q.startswith("test ")
        for q in build_split("m", explicit, "posttrain", {**sizes, "posttrain": 10}, 0)["question"]
    )


def test_posttrain_of_an_hf_split_mapping_defaults_to_verifier_train() -> None:
    hf = HFDataset.from_config(
        {
            "path": "x/y",
            "split": {"exemplars": "train", "verifier_train": "train", "validation": "test", "test": "test"},
        }
    )
    assert dict(hf.split)["posttrain"] == "train"
    assert hf.source("posttrain") == hf.source("verifier_train")


def test_posttrain_split_size_in_config_defaults_to_zero(repo: Path) -> None:
    from bongain.config import load_config, split_sizes

    cfg = load_config(repo / "config" / "test.yaml")
    assert split_sizes(cfg)["posttrain"] == 0
    assert cfg["splits"]["posttrain"] == 0
