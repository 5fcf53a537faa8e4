"""The run engine: a workflow's tasks (step × host), their states, the scheduler that
starts them, their attempts on the executors, the operator actions and the events every
front end reads (console, headless printers, the store's recorder).

It may import :mod:`console.model` (the frozen workflow, templating, masking),
:mod:`console.executors` (the executor interface; local and SSH are imported only when a
run needs them) and :mod:`console.sanitize`; never :mod:`console.store`,
:mod:`console.ui`, the CLI, or Textual. Inside it, :mod:`console.engine.run` is the
facade on top: the parts below it (``core``, ``graph``, ``status``, ``scheduler``,
``attempt``, ``command``, ``poll``, ``rollback_plan``, ``rollback``, ``actions``,
``texts``) are handed the run's core and never import ``run``.
"""
