"""Job functions for tests/test_jobs.py, importable by rq workers as `jobfuncs.<name>`."""

import time

from rq import get_current_job

from objectplatform.runtime.jobs import report_progress


def count_to(n: int) -> dict:
    """Report progress 0..n and return the squares up to n."""
    for i in range(n + 1):
        report_progress(i, n)
    return {"count": n, "squares": [i * i for i in range(n + 1)]}


def nap(seconds: float) -> dict:
    """Sleep `seconds`, then say so."""
    time.sleep(seconds)
    return {"slept": seconds}


def fail(message: str) -> None:
    """Raise ValueError(message)."""
    raise ValueError(message)


def not_json() -> object:
    """Return a value that is not JSON-serialisable."""
    return object()


def wait_for_key(key: str, timeout: float = 20) -> dict:
    """Report 1/3, wait (bounded) until Redis `key` is set, then report 3/3 and return its value."""
    report_progress(1, 3)
    connection = get_current_job().connection
    deadline = time.monotonic() + timeout
    while (value := connection.get(key)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key} was never set")
        time.sleep(0.05)
    report_progress(3, 3)
    return {"value": value.decode()}
