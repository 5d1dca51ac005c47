"""Student subgroup feeds (Derivita): one wide CSV, ``student_id`` then one configured column per subgroup.

- ``config``: the profile's ``subgroups:`` section -> typed column definitions (source, encoding, allowed values);
- ``build``: SIS snapshot -> the wide frame, ids from the roster vendor's own id settings;
- ``audit``: what changed against the previous delivery, the append-only audit trail and its query CLI
  (``python -m rostering.subgroups.audit --student ID [--column ell]``);
- ``vendor``: the format interface the pipeline calls (build, validate, payload, before/after delivery).

See docs/derivita.md.
"""
