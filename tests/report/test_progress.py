"""Progress lines on a non-TTY: start, heartbeat, end with elapsed time; silent in a terminal."""

from __future__ import annotations

import io
import re
import time

import pytest

from obliviate.progress import phase


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_non_tty_start_heartbeat_end(monkeypatch):
    monkeypatch.delenv("OBLIVIATE_PROGRESS", raising=False)
    s = _Stream(tty=False)
    with phase("build the benchmark", stream=s, heartbeat=0.05):
        time.sleep(0.3)
    lines = s.getvalue().splitlines()
    assert re.fullmatch(r"\[obliviate \d\d:\d\d:\d\d\] start: build the benchmark", lines[0])
    beats = [line for line in lines if "still running" in line]
    assert len(beats) >= 2
    assert re.search(r"done: build the benchmark \(0\.[2-9]\d*s\)|done: build the benchmark \(\d+\.\ds\)", lines[-1])


def test_failure_is_reported_and_raised(monkeypatch):
    monkeypatch.delenv("OBLIVIATE_PROGRESS", raising=False)
    s = _Stream(tty=False)
    with pytest.raises(RuntimeError):
        with phase("unlearn", stream=s, heartbeat=10):
            raise RuntimeError("boom")
    assert "failed: unlearn after" in s.getvalue() and "(RuntimeError)" in s.getvalue()


def test_tty_is_silent_unless_forced(monkeypatch):
    monkeypatch.delenv("OBLIVIATE_PROGRESS", raising=False)
    s = _Stream(tty=True)
    with phase("audit", stream=s, heartbeat=0.01):
        time.sleep(0.05)
    assert s.getvalue() == ""
    monkeypatch.setenv("OBLIVIATE_PROGRESS", "1")
    with phase("audit", stream=s, heartbeat=10):
        pass
    assert "start: audit" in s.getvalue()
    monkeypatch.setenv("OBLIVIATE_PROGRESS", "0")
    quiet = _Stream(tty=False)
    with phase("audit", stream=quiet):
        pass
    assert quiet.getvalue() == ""
