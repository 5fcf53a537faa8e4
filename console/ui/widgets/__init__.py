"""The run screen's widgets (tree, detail, log view and pane, header, banners). A widget
gets its data handed in and imports no screen and no app."""
