"""pygeoapi's PostgreSQL process manager, keeping job results in the database.

pygeoapi 0.24's manager writes results to files under ``output_dir`` and, without one, loses
them (its ``output`` column is never filled). This subclass stores each result in
``pygeoapi.jobs.output`` (table created by migration 0005) and reads it back, so jobs and their
results live in PostgreSQL and any API worker can answer ``/jobs/{id}/results``. The
``output_dir`` that pygeoapi's configuration schema requires is ignored.
"""

from __future__ import annotations

import copy
import json

from pygeoapi.process.base import JobResultNotFoundError
from pygeoapi.process.manager.postgresql import PostgreSQLManager
from pygeoapi.util import JobStatus


class JobManager(PostgreSQLManager):
    def __init__(self, manager_def: dict) -> None:
        # pygeoapi pops search_path out of the shared options dict: always pass a copy
        options = dict(copy.deepcopy(manager_def.get("options") or {}))
        options.setdefault("search_path", ["pygeoapi"])
        super().__init__({**manager_def, "options": options, "output_dir": None})

    def _execute_handler_sync(
        self,
        p,
        job_id,
        data_dict,
        requested_outputs=None,
        subscriber=None,
        requested_response="raw",
    ):
        original = p.execute

        def execute(data, **kwargs):
            mimetype, outputs = original(data, **kwargs)
            if isinstance(outputs, bytes):
                payload = outputs
            elif isinstance(outputs, str):
                payload = outputs.encode("utf-8")
            else:
                payload = json.dumps(outputs, ensure_ascii=False, default=str).encode("utf-8")
            self.update_job(job_id, {"output": payload})
            return mimetype, outputs

        p.execute = execute
        try:
            return super()._execute_handler_sync(
                p, job_id, data_dict, requested_outputs, subscriber, requested_response
            )
        finally:
            p.execute = original

    def get_jobs(self, status=None, limit=None, offset=None) -> dict:
        result = super().get_jobs(status=status, limit=limit, offset=offset)
        for job in result["jobs"]:
            job.pop("output", None)
        return result

    def get_job(self, job_id: str) -> dict:
        job = super().get_job(job_id)
        job.pop("output", None)
        return job

    def get_job_result(self, job_id: str):
        job = PostgreSQLManager.get_job(self, job_id)
        if JobStatus[job["status"]] != JobStatus.successful:
            return (None,)
        output = job.get("output")
        if output is None:
            raise JobResultNotFoundError()
        mimetype = job.get("mimetype")
        data = bytes(output)
        if mimetype in (None, "application/json", "application/ld+json"):
            return mimetype, json.loads(data)
        return mimetype, data

    def __repr__(self) -> str:
        return f"<JobManager> {self.name}"
