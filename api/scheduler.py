"""Scheduled scans inside ``rca serve``: one APScheduler job per ``ScanJob``.

APScheduler's ``BackgroundScheduler`` (UTC) with its in-memory job store: jobs are rebuilt
from settings on every start (nothing is pickled); what must outlive a restart — scans and
incident states — is in the SQL store. Per job: ``max_instances=1`` (a run still going when
the next is due is skipped and counted, not stacked), ``coalesce=True`` (runs missed while
busy collapse into one), ``misfire_grace_time``. A run that raises is logged and counted; the
scheduler keeps going.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from rca.errors import BadInput
from rca.scan_jobs import ScanJob

__all__ = ["ScanScheduler"]

log = logging.getLogger(__name__)


class Runner(Protocol):
    def run(self, job: ScanJob, now: int | None = None) -> dict[str, Any]: ...


def trigger_for(job: ScanJob) -> CronTrigger | IntervalTrigger:
    kind = job.trigger_kind()
    if kind == "cron":
        return CronTrigger.from_crontab(job.trigger, timezone=UTC)
    if kind == "interval":
        return IntervalTrigger(seconds=job.interval_s(), timezone=UTC)
    raise BadInput(f"scan job {job.name} has no trigger", field=f"scan job {job.name}: trigger",
                   fix='give a crontab ("*/5 * * * *") or an interval ("5m")')


class ScanScheduler:
    """Runs ``runner.run(job)`` for each of ``jobs`` on its trigger. ``max_workers`` threads
    run different jobs in parallel; ``misfire_grace_s``: how late a run may still start;
    ``first_run_now``: run every job once right after ``start`` too."""

    def __init__(self, runner: Runner, jobs: Sequence[ScanJob], max_workers: int = 2,
                 misfire_grace_s: int = 60, first_run_now: bool = False) -> None:
        self.runner = runner
        self.jobs = list(jobs)
        self.max_workers = max_workers
        self.misfire_grace_s = misfire_grace_s
        self.first_run_now = first_run_now
        self._scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()
        self._stats: dict[str, dict[str, Any]] = {}

    # ---- life -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._scheduler is not None:
            return
        sched = BackgroundScheduler(timezone=UTC, executors={"default": ThreadPoolExecutor(self.max_workers)},
                                    job_defaults={"max_instances": 1, "coalesce": True,
                                                  "misfire_grace_time": self.misfire_grace_s})
        sched.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        for job in self.jobs:
            self._stats.setdefault(job.name, {"runs": 0, "skipped": 0, "errors": 0, "missed": 0,
                                              "last_scan_id": None, "last_status": None, "last_error": None,
                                              "last_finished_at": None})
            extra = {"next_run_time": datetime.now(UTC)} if self.first_run_now else {}
            sched.add_job(self._run, trigger_for(job), args=(job,), id=job.name, name=f"scan {job.name}",
                          max_instances=1, coalesce=True, misfire_grace_time=self.misfire_grace_s,
                          replace_existing=True, **extra)
        sched.start()
        self._scheduler = sched
        log.info("scan scheduler started: %s", ", ".join(j.name for j in self.jobs) or "no jobs")

    def shutdown(self, wait: bool = True) -> None:
        """Stop firing; with ``wait``, let running scans finish (they are short and recorded)."""
        sched, self._scheduler = self._scheduler, None
        if sched is not None:
            sched.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    # ---- runs -------------------------------------------------------------------------------

    def _run(self, job: ScanJob) -> None:
        try:
            scan = self.runner.run(job)
        except Exception as e:  # the runner records its own failures; this is the last guard
            log.exception("scan job %s raised", job.name)
            self._bump(job.name, runs=1, errors=1, last_error=f"{type(e).__name__}: {e}", last_status="failed",
                       last_finished_at=datetime.now(UTC).isoformat())
            return
        self._bump(job.name, runs=1, last_scan_id=scan.get("id"), last_status=scan.get("status"),
                   last_error=(scan.get("result") or {}).get("error"),
                   last_finished_at=datetime.now(UTC).isoformat())

    def _on_event(self, event: Any) -> None:
        name = getattr(event, "job_id", None)
        if name is None:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("scan job %s: previous run still going, this run skipped", name)
            self._bump(name, skipped=1)
        elif event.code == EVENT_JOB_MISSED:
            log.warning("scan job %s: run missed its start by more than %ss", name, self.misfire_grace_s)
            self._bump(name, missed=1)
        elif event.code == EVENT_JOB_ERROR and isinstance(event, JobExecutionEvent):
            self._bump(name, errors=1, last_error=repr(event.exception))

    def _bump(self, name: str, **values: Any) -> None:
        with self._lock:
            st = self._stats.setdefault(name, {"runs": 0, "skipped": 0, "errors": 0, "missed": 0})
            for k, v in values.items():
                if k in ("runs", "skipped", "errors", "missed"):
                    st[k] = st.get(k, 0) + v
                else:
                    st[k] = v

    # ---- status -----------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Per job: trigger, next run (RFC 3339, None when stopped), runs, skipped, errors,
        last scan id and status."""
        out = []
        for job in self.jobs:
            nxt = None
            if self._scheduler is not None:
                aps = self._scheduler.get_job(job.name)
                if aps is not None and aps.next_run_time is not None:
                    nxt = aps.next_run_time.astimezone(UTC).isoformat()
            with self._lock:
                st = dict(self._stats.get(job.name, {}))
            out.append({"name": job.name, "trigger": job.trigger, "next_run": nxt, **st})
        return out
