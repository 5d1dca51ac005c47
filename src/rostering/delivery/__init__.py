"""Delivery of built vendor files. ``rostering.delivery.sftp`` is the only place files leave for a vendor's SFTP host.

Uploads are atomic (temporary name in the destination folder, size check, ``posix-rename``), host keys are always
verified, and errors are classified transient or permanent for the retry policy.
"""
