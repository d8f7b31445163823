import json

import pytest

from obliviate.api import unlearn
from obliviate.data.io import DataError, read_qa_file
from obliviate.data.task import ForgetTask, QAItem


def test_reads_jsonl_with_aliases(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text(json.dumps({"question": "q1", "answer": "a1"}) + "\n\n" + json.dumps({"prompt": "q2", "response": "a2"}) + "\n")
    items = read_qa_file(p)
    assert [(i.question, i.answer) for i in items] == [("q1", "a1"), ("q2", "a2")]


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_qa_file(p)


def test_missing_field_names_it(tmp_path):
    p = tmp_path / "f.jsonl"
    p.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(DataError, match=r"f\.jsonl:1: field 'answer' is missing"):
        read_qa_file(p)


def test_empty_forget_set_is_rejected(tiny_model, tiny_tokenizer, tiny_items):
    with pytest.raises(ValueError, match="forget set is empty"):
        unlearn(tiny_model, tiny_tokenizer, [], tiny_items, method="ga")


def test_forget_retain_overlap_is_rejected(tiny_items):
    task = ForgetTask("t", forget=tiny_items[:3], retain=tiny_items[2:6])
    with pytest.raises(ValueError, match="1 retain example"):
        task.validate()


def test_csv(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("question,answer\nq1,a1\n")
    assert read_qa_file(p) == [QAItem("q1", "a1", id="0")]
