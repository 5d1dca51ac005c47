"""SIS source adapters behind one interface (rostering.sis.sources.base), chosen by ``config/sis.yaml``:

- ``sql_model``   -- the SIS-neutral model in a database (rostering.sis.sources.sql_model)
- ``powerschool`` -- PowerSchool's REST API through the district's plugin (rostering.sis.sources.powerschool)
- ``aeries``      -- the Aeries API v5 with a district certificate (rostering.sis.sources.aeries)

Each API adapter maps its SIS onto the model's tables; the snapshot (rostering.sis.snapshot) is then made the same
way for every source. docs/sis-sources.md has the endpoints, fields and mapping tables.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rostering.sis.sources.base import SourceConnection

if TYPE_CHECKING:
    from rostering.sis.config import SisConfig

# source name -> "module:class" of its adapter (imported on use: the DAG files never import an adapter)
ADAPTERS = {
    "sql_model": "rostering.sis.sources.sql_model:SqlModelSource",
    "powerschool": "rostering.sis.sources.powerschool:PowerSchoolSource",
    "aeries": "rostering.sis.sources.aeries:AeriesSource",
}


def adapter_class(name: str) -> type:
    module, _, cls = ADAPTERS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def open_source(config: "SisConfig", *, engine: Any = None, connection: SourceConnection | None = None) -> Any:
    """The configured source, connected: ``engine`` (a SQLAlchemy engine) for sql_model, ``connection`` for an API."""
    cls = adapter_class(config.source)
    if config.source == "sql_model":
        if engine is None:
            raise ValueError("the sql_model source needs a database engine (Airflow connection "
                             f"{config.conn_id!r})")
        return cls(engine)
    if connection is None:
        raise ValueError(f"the {config.source} source needs its connection ({config.conn_id!r})")
    return cls(connection=connection, options=config.options)
