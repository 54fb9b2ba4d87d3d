"""vpbx.services: the use cases - one function per user-visible operation, each one transaction.

Rule: every rule the CLI, the engine and a future API share lives here. Services take a Store (and the Config where
they need it), call the pure layers (domain/, dialplan/, billing/) for decisions and storage/ for state. They never
import an edge (asterisk/, engine/, ari_app, cli, commands/) and never print.
"""
