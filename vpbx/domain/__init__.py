"""vpbx.domain: records, destinations, phone numbers, validation and errors - the vocabulary every layer shares.

Rule: pure. Nothing here does I/O or imports another vpbx layer; every other package may import it.
"""
