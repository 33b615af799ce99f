"""faasbus.queue_worker — consumes FAAS_INVOKE: calls replicas, retries, dead letters, callbacks.

Run with ``python -m faasbus.queue_worker``; settings in :mod:`faasbus.queue_worker.settings`.
"""

from faasbus.queue_worker.callbacks import sign
from faasbus.queue_worker.retry import Dead, Done, Outcome, Retry, RetryPolicy, decide
from faasbus.queue_worker.service import run_worker
from faasbus.queue_worker.settings import WorkerSettings

__all__ = [
    "Dead",
    "Done",
    "Outcome",
    "Retry",
    "RetryPolicy",
    "WorkerSettings",
    "decide",
    "run_worker",
    "sign",
]
