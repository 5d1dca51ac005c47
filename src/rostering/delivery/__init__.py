"""Delivery of built vendor files. ``rostering.delivery.sftp`` is the only place files leave for a vendor's SFTP host.

Uploads are atomic (temporary name in the destination folder, size check, ``posix-rename``), host keys are always
verified, and errors are classified transient or permanent for the retry policy.
"""

#: Transports whose receiver confirms a delivery later than the upload (CERS processes each import on its own time),
#: kind -> module: the module also implements ``confirm`` and ``confirm_timing`` (rostering.pipeline), and the
#: vendor DAG waits for the receiver in a reschedule sensor, ``confirm_delivery``, which carries the delivered Asset.
#: Read at DAG parse time: nothing is imported here, and those modules must stay light to import.
CONFIRMED_LATER = {"cers_api": "rostering.delivery.cers_api"}
