"""CSV jobs on their own queue (a long file never holds up sending), and the sweep that starts a job
whose task was lost or resumes one whose worker died (see smsqueue.jobs)."""

from __future__ import annotations

from smsqueue import jobs
from smsqueue.queues import Tasks
from smsqueue.tasks.celery_app import app
from smsqueue.tasks.doorbell import ring_job, ring_soon


@app.task(name=Tasks.RUN_JOB, ignore_result=True)
def run_job(job_pk: int) -> int:
    """Run the job to its end, ringing for each committed batch's queued messages; how many batches."""
    batches = 0
    for pks in jobs.run(job_pk):
        ring_soon(pks)
        batches += 1
    return batches


@app.task(name=Tasks.RESUME_JOBS, ignore_result=True)
def resume_jobs() -> int:
    due = jobs.due_for_resume()
    for job_pk in due:
        ring_job(job_pk)
    return len(due)
