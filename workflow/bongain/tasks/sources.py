"""Question sources of a task: JSONL files, hub datasets, and the task config :class:`TaskSpec`.

JSONL loading reports every problem as ``file:line``; hub rows are converted to the same
:class:`Record` (multiple-choice options are folded into the question text, the gold becomes a letter).
Rules and formats are documented in ``docs/tasks.md``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bongain.constants import ANSWER_TYPES, BLOCKS, POSTTRAIN
from bongain.tasks.generators import GENERATORS

#: How the gold answer is read from the raw answer field (see :func:`parse_gold`).
GOLD_FORMATS: tuple[str, ...] = ("plain", "gsm8k")


# --------------------------------------------------------------------------------------------------
# JSONL datasets
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One question of a JSONL file. ``line`` is 1-based; ``id`` is None without an ``id_key``."""

    line: int
    id: str | None
    question: str
    gold: str


def parse_gold(raw: str, gold_format: str) -> str:
    """The gold answer string from the raw answer field (``gsm8k``: text after the last ``####``)."""
    if gold_format == "plain":
        return raw.strip()
    if gold_format == "gsm8k":
        if "####" not in raw:
            return ""
        return raw.rsplit("####", 1)[1].replace(",", "").strip()
    raise ValueError(f"unknown gold_format {gold_format!r}; known: {list(GOLD_FORMATS)}")


def _field(obj: Mapping[str, object], key: str) -> str:
    value = obj.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return str(value)


def load_jsonl(
    path: str | Path,
    question_key: str,
    answer_key: str,
    id_key: str | None = None,
    gold_format: str = "plain",
) -> list[Record]:
    """Read a JSONL dataset; every problem raises ValueError naming the file and the 1-based line.

    Errors: invalid JSON (or a line that is not an object), missing/empty question, missing/empty gold
    (after ``gold_format`` parsing), missing/empty or duplicate id (with ``id_key``), duplicate question.
    Blank lines are skipped.
    """
    p = Path(path)
    if gold_format not in GOLD_FORMATS:
        raise ValueError(f"unknown gold_format {gold_format!r}; known: {list(GOLD_FORMATS)}")
    if not p.is_file():
        raise ValueError(f"{p}: JSONL file does not exist")
    records: list[Record] = []
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    with p.open(encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            question = _field(obj, question_key).strip()
            if not question:
                raise ValueError(f"{where}: missing or empty question (key {question_key!r})")
            gold = parse_gold(_field(obj, answer_key), gold_format)
            if not gold:
                raise ValueError(f"{where}: missing or empty gold answer (key {answer_key!r}, {gold_format})")
            rid: str | None = None
            if id_key is not None:
                rid = _field(obj, id_key).strip()
                if not rid:
                    raise ValueError(f"{where}: missing or empty id (key {id_key!r})")
                if rid in seen_ids:
                    raise ValueError(f"{where}: duplicate id {rid!r} (first at line {seen_ids[rid]})")
                seen_ids[rid] = lineno
            if question in seen_questions:
                raise ValueError(f"{where}: duplicate question (first at line {seen_questions[question]})")
            seen_questions[question] = lineno
            records.append(Record(line=lineno, id=rid, question=question, gold=gold))
    if not records:
        raise ValueError(f"{p}: no records")
    return records


# --------------------------------------------------------------------------------------------------
# Hub datasets (HF ``datasets``)
# --------------------------------------------------------------------------------------------------

#: Letters of multiple-choice options; grading accepts A-E.
CHOICE_LETTERS = "ABCDE"
#: How a multiple-choice question is shown to the model: the question, then one ``X. option`` line each.
CHOICE_TEMPLATE = "{question}\n{options}"
HF_DATASET_KEYS = (
    "path",
    "name",
    "split",
    "revision",
    "question_field",
    "answer_field",
    "id_field",
    "choices_field",
    "gold_format",
)


def with_posttrain(mapping: Mapping[str, object]) -> dict[str, object]:
    """A block -> source mapping with ``posttrain`` filled in: when left out, it draws from the source of
    ``verifier_train`` (carved after every other block of that source, so nothing else moves)."""
    out = dict(mapping)
    if POSTTRAIN not in out and "verifier_train" in out:
        out[POSTTRAIN] = out["verifier_train"]
    return out


@dataclass(frozen=True)
class HFDataset:
    """A dataset on the hub, loaded with ``datasets.load_dataset(path, name, split=..., revision=...)``.

    ``split`` names the dataset split each block of :data:`BLOCKS` is carved from (blocks naming the same
    split are carved from it disjointly). With ``choices_field`` the task is multiple choice: the options
    are appended to the question as ``A. ...`` lines (:data:`CHOICE_TEMPLATE`) and the gold becomes the
    option's letter; the field holds ``{"label": [...], "text": [...]}`` (ARC) or a list of option texts
    (MMLU), and the answer field a label, a letter or a 0-based option index.
    """

    path: str
    split: tuple[tuple[str, str], ...]  # ((block, dataset split), ...) in BLOCKS order
    name: str | None = None
    revision: str | None = None
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str | None = None
    choices_field: str | None = None
    gold_format: str = "plain"

    def __post_init__(self) -> None:
        if self.gold_format not in GOLD_FORMATS:
            raise ValueError(f"unknown gold_format {self.gold_format!r}; known: {list(GOLD_FORMATS)}")
        if sorted(b for b, _ in self.split) != sorted(BLOCKS):
            raise ValueError(
                f"hf_dataset 'split' must name a split for each of {list(BLOCKS)}; got {self.split}"
            )

    @classmethod
    def from_config(cls, cfg: Mapping[str, object]) -> HFDataset:
        unknown = sorted(set(cfg) - set(HF_DATASET_KEYS))
        if unknown:
            raise ValueError(f"unknown hf_dataset key(s) {unknown}; known: {sorted(HF_DATASET_KEYS)}")
        if "path" not in cfg or "split" not in cfg:
            raise ValueError("hf_dataset needs 'path' and 'split'")
        kwargs = dict(cfg)
        raw = kwargs["split"]
        if isinstance(raw, Mapping):
            raw = with_posttrain(raw)
            if sorted(raw) != sorted(BLOCKS):
                raise ValueError(
                    f"hf_dataset 'split' mapping must name a split for each of {list(BLOCKS)}; "
                    f"got {dict(raw)}"
                )
            kwargs["split"] = tuple((b, str(raw[b])) for b in BLOCKS)
        else:
            kwargs["split"] = tuple((b, str(raw)) for b in BLOCKS)
        return cls(**kwargs)  # type: ignore[arg-type]

    def source(self, block: str) -> str:
        """The source key of a block: blocks with the same key are carved from one question space."""
        rev = f" at revision {self.revision}" if self.revision else ""
        return f"{self.where(dict(self.split)[block])}{rev}"

    def where(self, split: str) -> str:
        name = f" ({self.name})" if self.name else ""
        return f"hf_dataset {self.path}{name} split {split!r}"


def _choice_options(value: object, where: str) -> tuple[list[str], list[str]]:
    """(labels as given, option texts) of a choices field."""
    if isinstance(value, Mapping):
        labels, texts = value.get("label"), value.get("text")
        if not isinstance(labels, list | tuple) or not isinstance(texts, list | tuple):
            raise ValueError(f"{where}: choices need 'label' and 'text' lists, got keys {sorted(value)}")
        if len(labels) != len(texts):
            raise ValueError(f"{where}: {len(labels)} choice labels but {len(texts)} texts")
        return [str(x).strip() for x in labels], [str(x).strip() for x in texts]
    if isinstance(value, list | tuple):
        return list(CHOICE_LETTERS[: len(value)]), [str(x).strip() for x in value]
    raise ValueError(
        f"{where}: choices must be a list or a {{label, text}} mapping, got {type(value).__name__}"
    )


def format_choice_question(question: str, texts: Sequence[str]) -> str:
    """The multiple-choice question text: the question then ``A. option`` lines (:data:`CHOICE_TEMPLATE`)."""
    options = "\n".join(f"{CHOICE_LETTERS[i]}. {t}" for i, t in enumerate(texts))
    return CHOICE_TEMPLATE.format(question=question, options=options)


def _choice_gold(raw: object, labels: Sequence[str], where: str) -> str:
    """The letter of the gold option: ``raw`` is one of ``labels``, a letter, or a 0-based index."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        index = raw
    else:
        text = str(raw).strip() if raw is not None else ""
        if text in labels:
            index = labels.index(text)
        elif len(text) == 1 and text.upper() in CHOICE_LETTERS[: len(labels)]:
            index = CHOICE_LETTERS.index(text.upper())
        else:
            raise ValueError(f"{where}: gold {raw!r} is not one of the choice labels {list(labels)}")
    if not 0 <= index < len(labels):
        raise ValueError(f"{where}: gold index {raw!r} is out of range for {len(labels)} choices")
    return CHOICE_LETTERS[index]


def records_from_rows(rows: Iterable[Mapping[str, object]], spec: HFDataset, split: str) -> list[Record]:
    """Records of one hub dataset split; ``Record.line`` is the 0-based row index.

    Every problem raises ValueError naming the dataset, split and row: missing/empty question or gold,
    malformed choices (more than 5 options, gold not among them), missing or duplicate id (with
    ``id_field``). A question that repeats an earlier one is dropped (hub data cannot be edited here;
    the first occurrence is kept), so every question is unique as in a JSONL file.
    """
    records: list[Record] = []
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    dropped = 0
    for row_index, row in enumerate(rows):
        where = f"{spec.where(split)} row {row_index}"
        question = _field(row, spec.question_field).strip()
        if not question:
            raise ValueError(f"{where}: missing or empty question (field {spec.question_field!r})")
        if spec.choices_field is not None:
            labels, texts = _choice_options(row.get(spec.choices_field), where)
            if not 2 <= len(texts) <= len(CHOICE_LETTERS):
                raise ValueError(f"{where}: {len(texts)} choices; 2 to {len(CHOICE_LETTERS)} are supported")
            if any(not t for t in texts):
                raise ValueError(f"{where}: an empty choice text")
            gold = _choice_gold(row.get(spec.answer_field), labels, where)
            question = format_choice_question(question, texts)
        else:
            gold = parse_gold(_field(row, spec.answer_field), spec.gold_format)
            if not gold:
                raise ValueError(
                    f"{where}: missing or empty gold answer (field {spec.answer_field!r}, {spec.gold_format})"
                )
        rid: str | None = None
        if spec.id_field is not None:
            rid = _field(row, spec.id_field).strip()
            if not rid:
                raise ValueError(f"{where}: missing or empty id (field {spec.id_field!r})")
            if rid in seen_ids:
                raise ValueError(f"{where}: duplicate id {rid!r} (first at row {seen_ids[rid]})")
            seen_ids[rid] = row_index
        if question in seen_questions:
            dropped += 1
            continue
        seen_questions[question] = row_index
        records.append(Record(line=row_index, id=rid, question=question, gold=gold))
    if dropped:
        logging.getLogger(__name__).warning("%s: dropped %d repeated question(s)", spec.where(split), dropped)
    if not records:
        raise ValueError(f"{spec.where(split)}: no records")
    return records


@cache
def load_hf_records(spec: HFDataset, split: str) -> tuple[Record, ...]:
    """Load one split from the hub (or the local HF cache) with ``datasets`` and convert its rows.

    ``datasets`` is imported here, never at import time or while Snakemake builds the DAG.
    """
    try:
        from datasets import load_dataset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ValueError(
            f"{spec.where(split)}: the 'datasets' package is needed (pip install datasets)"
        ) from err
    try:
        ds = load_dataset(spec.path, spec.name, split=split, revision=spec.revision)
    except Exception as err:  # network, missing config/split, ...: name the dataset
        raise ValueError(f"{spec.where(split)}: could not load ({type(err).__name__}: {err})") from err
    return tuple(records_from_rows(ds, spec, split))


# --------------------------------------------------------------------------------------------------
# Task specs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A task's config. Exactly one of ``generator``, ``jsonl`` and ``hf_dataset`` is set.

    ``jsonl`` maps every block of :data:`BLOCKS` to a file; blocks mapped to the same file are carved
    from it as consecutive disjoint blocks. A single path in the config maps all blocks to it.
    ``hf_dataset`` (:class:`HFDataset`) does the same with the splits of a hub dataset.
    """

    answer_type: str
    generator: str | None = None
    jsonl: tuple[tuple[str, str], ...] | None = None  # ((block, path), ...) in BLOCKS order
    hf_dataset: HFDataset | None = None
    question_key: str = "question"
    answer_key: str = "answer"
    id_key: str | None = None
    gold_format: str = "plain"

    def __post_init__(self) -> None:
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"unknown answer_type {self.answer_type!r}; known: {list(ANSWER_TYPES)}")
        if sum(x is not None for x in (self.generator, self.jsonl, self.hf_dataset)) != 1:
            raise ValueError("a task needs exactly one of 'generator', 'jsonl' and 'hf_dataset'")
        if self.hf_dataset is not None and (self.hf_dataset.choices_field is None) == (
            self.answer_type == "choice"
        ):
            raise ValueError("hf_dataset: 'choices_field' is needed exactly when answer_type is 'choice'")
        if self.generator is not None and self.generator not in GENERATORS:
            raise ValueError(f"unknown generator {self.generator!r}; known: {sorted(GENERATORS)}")
        if self.jsonl is not None and sorted(b for b, _ in self.jsonl) != sorted(BLOCKS):
            raise ValueError(f"'jsonl' must name a file for each of {list(BLOCKS)}; got {self.jsonl}")
        if self.gold_format not in GOLD_FORMATS:
            raise ValueError(f"unknown gold_format {self.gold_format!r}; known: {list(GOLD_FORMATS)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, object], base_dir: str | Path | None = None) -> TaskSpec:
        """Build from a YAML mapping; relative JSONL paths are resolved against ``base_dir``.

        ``jsonl`` is a path (all blocks carved from that file) or a mapping that names a file for each
        block of :data:`BLOCKS` (blocks naming the same file are carved from it disjointly).
        """
        known = {f for f in cls.__dataclass_fields__}
        cfg = {k: v for k, v in cfg.items() if k != "description"}  # documentation only
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown task config key(s) {unknown}; known: {sorted(known)}")
        kwargs = dict(cfg)
        if isinstance(kwargs.get("hf_dataset"), Mapping):
            kwargs["hf_dataset"] = HFDataset.from_config(kwargs["hf_dataset"])  # type: ignore[arg-type]
        raw = kwargs.get("jsonl")
        if raw is not None:
            base = Path(base_dir) if base_dir is not None else None

            def resolve(x: object) -> str:
                q = Path(str(x))
                return str(base / q if base is not None and not q.is_absolute() else q)

            if isinstance(raw, Mapping):
                raw = with_posttrain(raw)
                if sorted(raw) != sorted(BLOCKS):
                    raise ValueError(
                        f"'jsonl' mapping must name a file for each of {list(BLOCKS)}; got {dict(raw)}"
                    )
                kwargs["jsonl"] = tuple((b, resolve(raw[b])) for b in BLOCKS)
            else:
                kwargs["jsonl"] = tuple((b, resolve(raw)) for b in BLOCKS)
        return cls(**kwargs)  # type: ignore[arg-type]
