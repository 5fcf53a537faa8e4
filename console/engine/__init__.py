"""The run engine: tasks, states, operator actions, scheduler. Never imports Textual."""
