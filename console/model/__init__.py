"""The workflow model: what a workflow file says, read and checked before anything runs.

For: the frozen dataclasses (:mod:`~console.model.workflow`), loading a TOML workflow with
every problem located (:mod:`~console.model.loader` and its sections), inventories (TOML
and Ansible), params, secrets, durations, templating, shell quoting and masking.

May import: the standard library, tomli, Jinja2 (lazily, when a template needs it) and
PyYAML (Ansible inventories); nothing else of Baton's. Never the engine, the executors,
the store, the UI, Textual or asyncio: everything else imports the model, so it imports
none of them back.
"""

from console.model.workflow import (
    ALL,
    LOCAL,
    LOCAL_HOST,
    Host,
    Param,
    Rollout,
    Secret,
    SSHOptions,
    Step,
    Workflow,
)

__all__ = [
    "ALL",
    "LOCAL",
    "LOCAL_HOST",
    "Host",
    "Param",
    "Rollout",
    "SSHOptions",
    "Secret",
    "Step",
    "Workflow",
]
