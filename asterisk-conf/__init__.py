"""Asterisk base config (package data: vpbx.asterisk_conf in the wheel, see setup.py)."""
