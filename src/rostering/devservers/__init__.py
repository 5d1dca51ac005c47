"""Real local stand-ins for the outside systems the pipeline talks to (demo and tests only, loopback only).

``rostering.devservers.sftp_server`` is an asyncssh SFTP server that plays a vendor's SFTP host.
"""
