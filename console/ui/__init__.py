"""The Textual console (``baton`` without ``--headless``).

Only this package (and ``console.themes``) imports Textual. It may import every other
``console`` package (engine, model, store, executors, sanitize, reload); nothing outside it
imports it except ``console.cli``, lazily. Inside, data goes down and requests go up: the
app hands screens what they need (run, clock, history service), screens and widgets post
Messages that the app handles, and no screen or widget imports ``console.ui.app``.
``history`` and ``session`` hold the console's state without Textual.
"""
