"""Scale-out past one process with Dask (`dask.distributed`): one task per model file.

`dask_client(workers=N)` starts a `LocalCluster` of N worker processes on this machine and shuts
it down afterwards; `dask_client(scheduler=ADDRESS)` joins a cluster that is already running
(e.g. ``dask scheduler`` plus ``dask worker ADDRESS`` on other machines), and leaves it running.
`map_tasks` runs one function over a list of items there and yields the results as they finish.

Tasks return their results to the calling process, which writes every file itself: workers
need the package and the weights (hub access, a shared cache or the checkpoint paths), but no
shared file system for the output. With neither `workers` nor `scheduler`, callers run serially
in their own process: the same code path, so the same bytes.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterable, Iterator

from ..errors import ClusterError


def wants_cluster(workers: int | None = None, scheduler=None) -> bool:
    """Whether these options ask for Dask; a bad value is a `ClusterError` that says what is allowed."""
    if workers is not None and scheduler is not None:
        raise ClusterError("give either workers (a local cluster) or scheduler (an existing cluster), not both")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ClusterError(f"workers must be a positive number of processes, got {workers!r}")
    return workers is not None or scheduler is not None


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler=None, timeout: float = 60.0) -> Iterator:
    """A `distributed.Client`: to a new `LocalCluster` of `workers` single-threaded processes (shut down on
    exit), or to the scheduler at address `scheduler` (left running), or `scheduler` itself if it is a Client.

    The local workers get no per-worker memory limit: models differ a hundredfold in size and each
    worker holds one at a time, so a fixed share of the memory would kill the large ones.
    """
    wants_cluster(workers, scheduler)
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as err:
            raise ClusterError(f"cannot reach a Dask scheduler at {scheduler!r} ({err}); start one with "
                               "`dask scheduler` and workers with `dask worker ADDRESS`, or use --workers N "
                               "for a cluster on this machine") from err
        with client:
            yield client
        return
    with local_cluster(workers) as local, Client(local, timeout=timeout) as client:
        yield client


#: Settings of the local clusters started here. A task whose worker dies twice fails (its model is
#: reported, the others go on). A lost worker is never given up: its nanny restarts it, but with
#: Dask's default (15 s) workers that die in a row are closed for good and the remaining tasks wait forever.
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": 1, "distributed.deploy.lost-worker-timeout": "365 days"}


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator:
    """A `LocalCluster` of `workers` single-threaded processes with `LOCAL_CONFIG`, shut down on exit."""
    import dask
    from distributed import LocalCluster

    wants_cluster(workers)
    with dask.config.set(LOCAL_CONFIG), LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0, dashboard_address=None,
            silence_logs=logging.ERROR) as running:
        yield running


def map_tasks(client, function: Callable, items: Iterable, *args) -> Iterator[tuple[int, object]]:
    """(index, function(item, *args)) for every item, run on the cluster, in the order they finish.

    A task whose worker died (killed, out of memory) yields a `ClusterError` in place of its
    result, so the other tasks go on. An exception raised in a task is raised here, as the task
    raised it, and the tasks not yet finished are cancelled. Results are released once yielded.
    """
    from distributed import KilledWorker, as_completed

    items = list(items)
    futures = [client.submit(function, item, *args, pure=False) for item in items]
    index_of = {future.key: index for index, future in enumerate(futures)}
    try:
        for future in as_completed(futures):
            index = index_of[future.key]
            try:
                result = future.result()
            except KilledWorker as err:
                result = ClusterError(f"its Dask worker died, most often from running out of memory ({err}); "
                                      "rerun with fewer workers")
            future.release()
            yield index, result
    finally:
        client.cancel([f for f in futures if not f.done()])
