"""Built-in prompts (package data: vpbx.prompts in the wheel, see setup.py)."""
