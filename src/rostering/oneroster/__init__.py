"""OneRoster 1.1 CSV: the spec as data (``spec``), the build from a SIS snapshot (``build``), ids and grades."""
