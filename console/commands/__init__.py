"""The ``baton`` subcommands, one module per family (runs, history, rollback, workflow
files), each declaring its :class:`~console.commands.shared.Command` values;
``console/cli.py`` parses the command line and lists them (one line registers one).

A command only parses its arguments and calls the modules doing the work (opening a run is
:mod:`console.launch`); every expected failure is one line on stderr and an exit code
(SPEC section 2). Modules here may import any part of ``console`` but never
``console.cli``; Textual is imported only when the console opens.
"""
