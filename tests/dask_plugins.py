"""Worker plugins for the Dask tests: they wrap ``repscope.engine.jobs.run_job`` on every worker
(also on a worker restarted after a death) to misbehave on one job."""

from __future__ import annotations

import os
import time
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin


class Misbehave(WorkerPlugin):
    """On job ``job_id``: ``kill-once`` kills the worker process the first time (a line in
    ``marker`` per kill), ``kill-always`` every time, ``hang`` sleeps for an hour."""

    def __init__(self, job_id: str, marker: str, action: str) -> None:
        self.job_id, self.marker, self.action = job_id, marker, action
        self.name = f"misbehave-{action}"

    def setup(self, worker) -> None:
        import repscope.engine.jobs as jobs

        original = getattr(jobs, "_original_run_job", jobs.run_job)
        jobs._original_run_job = original
        job_id, marker, action = self.job_id, Path(self.marker), self.action

        def run_job(run_dir, key, settings):
            if key.id == job_id:
                kills = marker.read_text().count("\n") if marker.exists() else 0
                if action == "kill-always" or (action == "kill-once" and kills == 0):
                    with open(marker, "a") as f:
                        f.write(f"killed worker {os.getpid()}\n")
                    os._exit(1)
                if action == "hang":
                    time.sleep(3600)
            return original(run_dir, key, settings)

        jobs.run_job = run_job
