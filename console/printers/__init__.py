"""Headless event printers: human-readable lines or the JSON event stream (SPEC section 4).

Both are run subscribers (``printer(event)``) that write bytes to a binary stream. Log
output is the hot path — a flood of millions of lines — so a :class:`LogEvent` chunk of
many lines costs a few ``str`` operations, never a Python loop per line:

- human: ``prefix + text.replace("\\n", "\\n" + prefix)``;
- JSON: when the chunk holds nothing JSON must escape, every per-line object is built by
  one ``str.replace`` between a precomputed head and tail; otherwise each line goes
  through the json encoder.

One module each: :mod:`~console.printers.writer` (the byte writer both printers write
through), :mod:`~console.printers.human`, :mod:`~console.printers.json_stream`, and
:mod:`~console.printers.tables` (the ``baton runs`` table). May import the engine's events,
the model and :mod:`console.sanitize`; never the store, the UI or Textual.
"""

from console.engine.task import task_label
from console.printers.human import HumanPrinter, format_reload, format_summary, use_color
from console.printers.json_stream import JsonPrinter
from console.printers.tables import format_runs

__all__ = ["HumanPrinter", "JsonPrinter", "format_reload", "format_runs", "format_summary",
           "task_label", "use_color"]
