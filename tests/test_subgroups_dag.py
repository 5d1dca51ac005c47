"""The Derivita DAG waits for the roster delivery it shares ids with; the demo runs it after that roster."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rostering.devservers.demo import in_run_order
from rostering.vendors.profile import delivered_asset_name, load_profile

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "derivita_subgroups.py"


def test_the_demo_runs_a_profile_after_the_one_it_waits_for():
    derivita, stmath = load_profile("derivita"), load_profile("stmath")
    assert [p.name for p in in_run_order([derivita, stmath])] == ["stmath", "derivita"]  # file-name order otherwise
    with pytest.raises(ValueError, match="cycle"):
        in_run_order([derivita, replace(stmath, after="derivita")])


def test_derivita_dag_is_scheduled_on_the_stmath_delivery_and_takes_accept_column_change():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    dag = bag.dags["derivita_subgroups"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.name for a in dag.timetable.asset_condition.objects] == [delivered_asset_name("stmath")]
    assert dag.params["accept_column_change"] is False
    assert "Airflow" in dag.doc_md and "When it fails" in dag.doc_md and "accept_column_change" in dag.doc_md
    deliver = dag.get_task("deliver")
    assert [a.name for a in deliver.outlets] == [delivered_asset_name("derivita")]
