"""Airflow glue: the DAG factory and the task wrappers. Only imported by DAG files and tasks."""
