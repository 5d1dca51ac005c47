"""Airflow plugin: each run's report.html in the UI (tab "Run report" on a DAG run; /rostering/reports/<dag>/<run>).

Thin on purpose (this folder's modules are imported by every Airflow process): the code is rostering.report_web.
"""
from airflow.plugins_manager import AirflowPlugin

from rostering.report_web import configured_base_url, external_view, fastapi_app


class RosteringReportsPlugin(AirflowPlugin):
    name = "rostering_reports"
    fastapi_apps = [fastapi_app()]
    external_views = [external_view(configured_base_url())]
