"""Live runs outside the console: the attach protocol (docs/attach-protocol.md), the
socket server every live run listens on, the client API the console speaks, and the
detached runner process that owns a console run.

Nothing here imports Textual; only :mod:`console.engine.run`'s public API is used
(``subscribe``, the action methods, ``allowed``/``refusal``, ``state``, ``tasks``).
"""
