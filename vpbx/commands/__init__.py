"""vpbx.commands: one module per CLI command group, loaded lazily by vpbx.cli.

Rule: a thin shell. Parse options, call one service function, print through vpbx.commands.output; no rule of its own.
"""
