"""The Textual operations console. Only `poolui` (the console) imports this package; headless never does."""
