"""Progress that shows in log files: long phases say when they start and end, and send a heartbeat.

In a terminal the rich progress bars do this job, so `phase` stays silent there. When stderr is not a
TTY (a CI log, ``nohup``, a batch job), each phase prints, to stderr::

    [obliviate 12:00:01] start: build the fictional_authors benchmark
    [obliviate 12:00:31] ... build the fictional_authors benchmark: still running (30s)
    [obliviate 12:00:47] done: build the fictional_authors benchmark (46.2s)

``OBLIVIATE_PROGRESS=0`` silences it, ``OBLIVIATE_PROGRESS=1`` forces it on in a terminal too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import IO, Iterator

# At most this many seconds between two lines of a running phase.
HEARTBEAT_SECONDS = 30.0


def _enabled(stream: IO[str]) -> bool:
    flag = os.environ.get("OBLIVIATE_PROGRESS", "").strip().lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def _say(stream: IO[str], text: str) -> None:
    stream.write(f"[obliviate {time.strftime('%H:%M:%S')}] {text}\n")
    stream.flush()


@contextlib.contextmanager
def phase(name: str, *, stream: IO[str] | None = None, heartbeat: float = HEARTBEAT_SECONDS,
          enabled: bool | None = None) -> Iterator[None]:
    """Announce the phase ``name`` on a non-TTY ``stream`` (default stderr): a line at the start, one
    every ``heartbeat`` seconds while it runs, and one at the end with the elapsed time (or the
    error that ended it)."""
    out = stream if stream is not None else sys.stderr
    if not (_enabled(out) if enabled is None else enabled):
        yield
        return
    t0 = time.perf_counter()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            _say(out, f"... {name}: still running ({time.perf_counter() - t0:.0f}s)")

    _say(out, f"start: {name}")
    thread = threading.Thread(target=beat, name=f"obliviate-heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    except BaseException as e:
        stop.set()
        thread.join()
        _say(out, f"failed: {name} after {time.perf_counter() - t0:.1f}s ({type(e).__name__})")
        raise
    stop.set()
    thread.join()
    _say(out, f"done: {name} ({time.perf_counter() - t0:.1f}s)")
