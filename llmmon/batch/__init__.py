"""Batch inference jobs (seed 5.3 case 2): progress, success rate, speed, ETA and errors of
long-running batch jobs (the seed's BatchJobMonitor files and OpenAI Batch objects).

- ``sources``: read one job state object (two formats) or reject it with a reason;
- ``assess``: pure per-job assessment over llmmon's own snapshot history (rate, ETA, risk);
- ``run``: the stages (observe -> assess -> alert) the DAG and ``llmmon batch-jobs`` call;
- ``report``: report.json/html and the daily report's ``batch_jobs`` section;
- ``alerts``: P1 alerts through ``llmmon.alerts.notify``;
- ``client``: :class:`BatchJobMonitor`, three lines in a batch job;
- ``poller``: OpenAI Batches API -> job state objects;
- ``tables``: the warehouse tables.
"""

from llmmon.batch.client import BatchJobMonitor

__all__ = ["BatchJobMonitor"]
