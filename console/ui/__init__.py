"""The Textual console. Only this package (and console.themes) imports textual."""
