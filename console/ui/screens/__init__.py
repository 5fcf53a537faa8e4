"""Screens and modals of the console."""
