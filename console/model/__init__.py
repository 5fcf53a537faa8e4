"""Workflow model, loader and templating. Never imports Textual."""

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
