"""Read user data (JSONL / CSV / JSON) into QA items, with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from obliviate.data.task import QAItem
from obliviate.errors import ObliviateError

QUESTION_KEYS = ("question", "prompt", "input")
ANSWER_KEYS = ("answer", "response", "output", "completion")


class DataError(ObliviateError, ValueError):
    """Bad input data; the message names the file, the line and the fix."""


def _from_messages(msgs: object, where: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """(question, answer, earlier turns) of a chat record: the last assistant turn is the answer, the
    user turn before it the question, everything before that the context (system prompt included)."""
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}} objects")
    turns = []
    for j, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: messages[{j}] must be an object with string 'role' and 'content'")
        if m["role"] not in ("system", "user", "assistant"):
            raise DataError(f"{where}: messages[{j}] has role {m['role']!r}; use system, user or assistant")
        turns.append((m["role"], m["content"]))
    if len(turns) < 2 or turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise DataError(f"{where}: 'messages' must end with a user turn followed by the assistant answer "
                        f"(roles here: {[r for r, _ in turns]})")
    return turns[-2][1], turns[-1][1], tuple(turns[:-2])


def _item_from_record(rec: dict, where: str, index: int) -> QAItem:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object with 'question' and 'answer', got {type(rec).__name__}")
    context: tuple[tuple[str, str], ...] = ()
    if "messages" in rec:
        q, a, context = _from_messages(rec["messages"], where)
    else:
        q = next((rec[k] for k in QUESTION_KEYS if k in rec), None)
        a = next((rec[k] for k in ANSWER_KEYS if k in rec), None)
    if not isinstance(q, str) or not isinstance(a, str):
        missing = "question" if not isinstance(q, str) else "answer"
        raise DataError(
            f"{where}: field {missing!r} is missing or not a string (accepted names: "
            f"{', '.join(QUESTION_KEYS if missing == 'question' else ANSWER_KEYS)}, or a 'messages' list); "
            f"keys present: {sorted(rec)}"
        )
    for name, text in (("question", q), ("answer", a)):
        if not text.strip():
            raise DataError(f"{where}: the {name} is empty; every record needs a non-empty question and answer "
                            "(remove the record or fill it in)")
    pert = rec.get("perturbed_answers", rec.get("perturbed_answer", ()))
    if isinstance(pert, str):
        pert = (pert,)
    return QAItem(
        question=q,
        answer=a,
        id=str(rec.get("id", index)),
        group=str(rec.get("group", rec.get("author", ""))),
        paraphrased_answer=rec.get("paraphrased_answer"),
        perturbed_answers=tuple(pert),
        question_paraphrases=tuple(rec.get("question_paraphrases", ())),
        alt_answer=rec.get("alt_answer"),
        context=context,
    )


def read_qa_file(path: str | Path) -> list[QAItem]:
    """Read QA items from ``.jsonl`` (one object per line), ``.json`` (a list) or ``.csv``.

    Files must be UTF-8; an empty question or answer, or a CSV header naming a column twice, is an
    error naming the file and line (a repeated column would silently keep only its last value)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a folder; give a .jsonl, .json or .csv file")
    try:
        return _read_qa_file(p)
    except UnicodeDecodeError:
        raise DataError(f"{p}:{_first_non_utf8_line(p)}: not UTF-8 text; save the file as UTF-8") from None


def _first_non_utf8_line(p: Path) -> int:
    for lineno, raw in enumerate(p.read_bytes().splitlines(), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return lineno
    return 1


def _read_qa_file(p: Path) -> list[QAItem]:
    items: list[QAItem] = []
    if p.suffix == ".jsonl":
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{p}:{lineno}: not valid JSON ({e.msg}); each line must be one JSON object") from None
                items.append(_item_from_record(rec, f"{p}:{lineno}", len(items)))
    elif p.suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, list):
            raise DataError(f"{p}: expected a JSON list of objects")
        items = [_item_from_record(r, f"{p}[{i}]", i) for i, r in enumerate(data)]
    elif p.suffix == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            dupes = sorted({c for c in header if header.count(c) > 1})
            if dupes:
                raise DataError(f"{p}:1: column(s) {', '.join(map(repr, dupes))} appear more than once in the header; "
                                "give each column once")
            for i, row in enumerate(reader):
                if None in row:  # more cells than header columns
                    raise DataError(f"{p}:{reader.line_num}: {len(header) + len(row[None])} cells for "
                                    f"{len(header)} header columns; quote cells that contain commas")
                items.append(_item_from_record(dict(row), f"{p}:{reader.line_num}", i))
    else:
        raise DataError(f"{p}: unsupported file type {p.suffix!r}; use .jsonl, .json or .csv")
    return items
