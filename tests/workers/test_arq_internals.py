"""workers/resilient.py overrides private parts of arq's Worker. This fails, naming that
module, when the installed arq is outside the range it was written for, or when what it
overrides or reads changed shape."""

from __future__ import annotations

import inspect
from importlib.metadata import version

from arq.worker import Worker
from packaging.version import Version

from workers.resilient import ARQ_VERSIONS

MODULE = "workers/resilient.py (MailsyncWorker)"


def test_installed_arq_is_the_range_the_worker_overrides_were_written_for() -> None:
    installed = Version(version("arq")).release[:2]
    low, high = ARQ_VERSIONS
    assert low <= installed < high, f"arq {installed} is outside {ARQ_VERSIONS}: re-check {MODULE}"


def test_the_overridden_and_read_internals_still_exist() -> None:
    assert list(inspect.signature(Worker._poll_iteration).parameters) == ["self"], MODULE
    assert list(inspect.signature(Worker.start_jobs).parameters) == ["self", "job_ids"], MODULE
    source = inspect.getsource(Worker.start_jobs)
    # The leak start_jobs repairs: a slot taken and the job counted before the transaction.
    assert source.index("self.sem.acquire()") < source.index("pipe.watch"), MODULE
    assert "self.job_counter = self.job_counter + 1" in source, MODULE
    for name in ("allow_pick_jobs", "job_counter", "sem", "tasks"):
        assert name in inspect.getsource(Worker.__init__), f"Worker.{name}: {MODULE}"
