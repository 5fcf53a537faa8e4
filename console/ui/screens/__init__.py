"""The console's screens and dialogs. A screen gets what it shows handed in and posts
Messages for what only the app can do; it imports widgets and ``console.ui`` helpers,
never ``console.ui.app``."""
