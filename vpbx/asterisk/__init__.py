"""vpbx.asterisk: everything that speaks to Asterisk - the ARI client, the config renderers, deploy and reload (AMI).

Rule: an edge. It may use services/ and everything below; nothing below imports it.
"""
