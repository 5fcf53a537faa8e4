"""Live runs outside the console: the attach protocol (docs/attach-protocol.md), the
socket server every live run listens on (with its host key forwarding), the client API
the console speaks, and the detached runner process that owns a console run.

The runner's side (protocol, server, hostkeys, client, reader, daemon, process, resume,
mirror) never imports Textual; only :mod:`console.engine.run`'s public API is used
(``subscribe``, the action methods, ``allowed``/``refusal``, ``state``, ``tasks``). The
console's side of a remote run is :mod:`attach_app`, :mod:`owned` and :mod:`serve`.
"""
