"""A SIS API stand-in in a process of its own for the bench: the district is generated there (same seed, same
district as the database's), served with added latency per request, and the connection fields are handed back.

In its own process the stand-in's request handling does not compete with the adapter for one interpreter's lock,
as a real SIS server would not.
"""
from __future__ import annotations

import multiprocessing
from typing import Any


def _serve(source: str, students: int, seed: int, school_year: int, latency_s: float, pipe: Any, stop: Any) -> None:
    from rostering.devservers.sis_standins import start_standin
    from rostering.sis.demo import generate_district

    tables = generate_district(students, seed=seed, school_year=school_year)
    server, connection = start_standin(source, tables, latency_s=latency_s)
    pipe.send({"host": connection.host, "login": connection.login, "password": connection.password})
    stop.wait()
    server.stop()


class StandinProcess:
    def __init__(self, source: str, *, students: int, seed: int, school_year: int, latency_s: float):
        context = multiprocessing.get_context("spawn")
        self._parent, child = context.Pipe()
        self._stop = context.Event()
        self._process = context.Process(target=_serve, args=(source, students, seed, school_year, latency_s, child,
                                                             self._stop), daemon=True)

    def __enter__(self) -> dict[str, Any]:
        self._process.start()
        if not self._parent.poll(600):
            raise RuntimeError("the stand-in did not start within 10 minutes")
        return self._parent.recv()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
