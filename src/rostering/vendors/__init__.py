"""Vendor profiles: one YAML file per vendor in config/vendors/, loaded into ``VendorProfile``."""
