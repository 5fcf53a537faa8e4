"""Executors run one attempt of a task on a host and stream its output."""
