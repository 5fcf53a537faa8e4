"""The params form: shown before a run when a required param has no value.

One typed field per param (a select for choices, a switch for bools, an input for the
rest), defaults filled in, each value checked with ``console.model.params.coerce`` as
it is typed. Dismisses with the raw values, or None when cancelled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Switch

from console.model.params import ParamError, coerce
from console.model.workflow import Param, Workflow
from console.ui.widgets.inputs import make_input


def _initial(param: Param, given: dict[str, Any]) -> Any:
    if param.name in given:
        return given[param.name]
    return param.default


class ParamsForm(Screen[dict[str, Any] | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="params.cancel"),
        Binding("ctrl+s", "submit", "Start", id="params.submit"),
    ]

    def __init__(self, workflow: Workflow, given: dict[str, Any]) -> None:
        super().__init__()
        self.workflow = workflow
        self.given = given
        self._touched: set[str] = set()
        """Params the operator edited: only their problems show before a submit."""
        self._submitted = False

    def on_mount(self) -> None:
        """The first field has the focus: typing goes straight into it."""
        self.query_one("#params-form", VerticalScroll).can_focus = False
        fields = [w for w in self.query(".param-field") if w.focusable]
        if fields:
            fields[0].focus()

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="params-form"):
            yield Label(f"Parameters · {self.workflow.name}", classes="dialog-title")
            for name, param in self.workflow.params.items():
                with Vertical(classes="param"):
                    kind = param.type + (" · required" if param.required else "")
                    yield Label(f"{name}  ({kind})", classes="param-name")
                    if param.description:
                        yield Label(param.description, classes="dialog-hint")
                    yield self._field(param)
                    yield Label("", id=f"error-{name}", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start (ctrl+s)", variant="success", id="submit")
                yield Button("Cancel (esc)", id="cancel")
        yield Footer()

    def _field(self, param: Param) -> Input | Select[Any] | Switch:
        value = _initial(param, self.given)
        field_id = f"param-{param.name}"
        if param.type == "choice":
            options = [(str(c), c) for c in param.choices]
            start = value if value in param.choices else Select.BLANK
            return Select(options, value=start, id=field_id, allow_blank=not param.choices,
                          classes="param-field")
        if param.type == "bool":
            try:
                on = bool(coerce(param, value)) if value is not None else False
            except ParamError:
                on = False
            return Switch(value=on, id=field_id, classes="param-field")
        kinds = {"int": "integer", "float": "number"}
        field = make_input(self.app, value="" if value is None else str(value),
                           placeholder=param.description or param.name, id=field_id,
                           type=kinds.get(param.type, "text"), classes="param-field")
        return field

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The raw values and the problem of each param that has one."""
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, param in self.workflow.params.items():
            widget = self.query_one(f"#param-{name}")
            if isinstance(widget, Select):
                raw = None if widget.value is Select.BLANK else widget.value
            else:
                raw = widget.value  # type: ignore[attr-defined]
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if param.required:
                    problems[name] = "required"
                continue
            try:
                values[name] = coerce(param, raw)
            except ParamError as exc:
                problems[name] = str(exc)
        return values, problems

    def _show_problems(self, problems: dict[str, str]) -> None:
        for name in self.workflow.params:
            shown = self._submitted or name in self._touched
            self.query_one(f"#error-{name}", Label).update(problems.get(name, "") if shown
                                                           else "")

    def on_input_changed(self, event: Input.Changed) -> None:
        field = event.input.id or ""
        name = field.removeprefix("param-")
        initial = _initial(self.workflow.params[name], self.given) if name in \
            self.workflow.params else None
        if event.value != ("" if initial is None else str(initial)):
            self._touched.add(name)
        self._show_problems(self.values()[1])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        self._submitted = True
        values, problems = self.values()
        self._show_problems(problems)
        if not problems:
            self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)
