"""`baton run FILE --headless --watch`: edits of the file apply to the live run (issue 6)."""

from __future__ import annotations

import io
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REPO, baton_env, write_workflow

from console.engine.events import ReloadEvent
from console.printers import HumanPrinter, JsonPrinter

WAITING = """
[workflow]
name = "Watched"

[params]
marker = { type = "string", required = true }

[steps.first]
run = "echo first-started; while [ ! -e {{ params.marker }} ]; do sleep 0.05; done; echo first-done"
"""

ADDED = """
[steps.added]
needs = ["first"]
run = "echo added-ran"
"""

BROKEN = """
[steps.broken]
needs = ["nowhere"]
run = "true"
"""


class Events:
    """The JSON events of a running `baton`, read by a thread so a wait can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[dict] = []
        self._queue: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def wait_for(self, **fields: object) -> dict:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                event = self._queue.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if event is None:
                break
            self.seen.append(event)
            if all(event.get(k) == v for k, v in fields.items()):
                return event
        raise AssertionError(f"no event with {fields}; saw {self.seen}")


def test_an_added_step_runs_and_an_invalid_edit_is_reported(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, WAITING)
    marker = tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--json",
         "--watch", "--param", f"marker={marker}"],
        cwd=REPO, env=baton_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        events = Events(proc)
        events.wait_for(type="log", step="first", line="first-started")
        time.sleep(0.3)  # the watcher is up well before this

        with path.open("a", encoding="utf-8") as f:
            f.write(ADDED)
        reload = events.wait_for(type="reload")
        assert reload == {"type": "reload", "added": ["added"], "changed": [], "removed": []}

        with path.open("a", encoding="utf-8") as f:
            f.write(BROKEN)
        refused = events.wait_for(type="reload")
        assert list(refused) == ["type", "error"]
        assert refused["error"].startswith(f"{path}:"), refused
        assert "nowhere" in refused["error"]

        marker.touch()  # the run carries on with the last good definition
        assert events.wait_for(type="log", step="added")["line"] == "added-ran"
        events.wait_for(type="task", step="added", state="succeeded")
        events.wait_for(type="run", state="succeeded")
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert not any(e["type"] == "task" and e["step"] == "broken" for e in events.seen)


def test_a_run_without_edits_ends_as_usual_with_watch(tmp_path: Path) -> None:
    path = write_workflow(tmp_path, '[workflow]\nname = "w"\n[steps.a]\nrun = "echo hi"\n')
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "console.cli", "run", str(path), "--headless", "--watch"],
        cwd=REPO, env=baton_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "a | hi" in result.stdout
    assert time.monotonic() - started < 10


def _printed(printer_type: type, event: ReloadEvent) -> str:
    out = io.BytesIO()
    printer = printer_type(out)
    printer(event)
    printer.flush()
    return out.getvalue().decode()


def test_reload_lines_human_and_json() -> None:
    diff = ReloadEvent(["new"], ["deploy"], ["old"], "abc", None, 1.0)
    assert _printed(HumanPrinter, diff) == "reload: +new ~deploy -old\n"
    assert json.loads(_printed(JsonPrinter, diff)) == {
        "type": "reload", "added": ["new"], "changed": ["deploy"], "removed": ["old"]}
    error = ReloadEvent([], [], [], None, "wf.toml:7: unknown step 'x'", 1.0)
    assert _printed(HumanPrinter, error) == (
        "reload: wf.toml:7: unknown step 'x' (the run keeps the previous definition)\n")
    assert _printed(JsonPrinter, error) == (
        '{"type":"reload","error":"wf.toml:7: unknown step \'x\'"}\n')
