"""Rostering: SIS snapshot -> vendor files (OneRoster, CERS, subgroups) -> validated, atomic delivery.

Plain Python; nothing here needs a running Airflow. The Airflow glue lives in ``rostering.airflow``.
"""
