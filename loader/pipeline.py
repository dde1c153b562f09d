"""The whole load of a run: a producer fetches objects ahead (small ones concurrently, on one
shared client, in listing order, a bounded number of bytes ahead) and groups them into batches;
``workers`` consumers copy them, each on its own connection (``loader.copying.Copier``). The
time budget is checked before each batch or large object; what is left is counted, not lost."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from loader.copying import BatchLimits, Copier, Fetched, WorkerCounts
from loader.db import connect
from loader.progress import Progress
from loader.runs import RunSummary
from loader.sources import ObjectInfo, Source

# --- fetching


def fetch_in_order(
    source: Source, objects: Iterable[ObjectInfo], limits: BatchLimits, stop: threading.Event
) -> Iterator[Fetched]:
    """Yield every object in order, small ones with their bytes: up to ``fetch_concurrency``
    GETs in flight and at most ``limits.bytes`` fetched but not yet handed on."""
    small_limit = limits.small_object_bytes
    concurrency = max(1, min(limits.fetch_concurrency, source.max_fetch_concurrency))
    window: deque = deque()
    ahead = 0
    pending = iter(objects)
    exhausted = False
    with ThreadPoolExecutor(concurrency, thread_name_prefix="loader-fetch") as pool:
        try:
            while True:
                while not exhausted and not stop.is_set() and len(window) < concurrency:
                    if window and ahead >= limits.bytes:
                        break
                    obj = next(pending, None)
                    if obj is None:
                        exhausted = True
                        break
                    if obj.size > small_limit:
                        window.append(Fetched(obj, large=True))
                    else:
                        window.append(pool.submit(_fetch_one, source, obj))
                        ahead += obj.size
                if not window or stop.is_set():
                    return
                head = window.popleft()
                item = head if isinstance(head, Fetched) else head.result()
                if not item.large:
                    ahead -= item.obj.size
                yield item
        finally:
            for pending_future in window:
                if not isinstance(pending_future, Fetched):
                    pending_future.cancel()


def _fetch_one(source: Source, obj: ObjectInfo) -> Fetched:
    try:
        return Fetched(obj, data=source.fetch(obj))
    except Exception as exc:  # recorded against the object; never stops the others
        return Fetched(obj, error=exc)


# --- the whole load: a fetching producer and ``workers`` copying consumers


_COUNTERS = (
    "objects",
    "events",
    "lines",
    "rejects",
    "etag_changes",
    "failed_objects",
    "busy_objects",
    "bytes_read",
)
_DONE = object()


def load_all(
    source: Source,
    conn,
    pending: list[ObjectInfo],
    summary: RunSummary,
    *,
    workers: int,
    limits: BatchLimits,
    progress: Progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Load ``pending`` (listing order) and return how many objects were left unloaded because
    ``should_stop`` said so (the time budget). Each worker has its own connection (the first
    reuses ``conn``): PostgreSQL parses jsonb in one backend per COPY, so two COPYs use two
    cores. Exactly once rests on the per-object locks and the manifest, batch or not."""
    if not pending:
        return 0
    workers = max(1, min(workers, len(pending)))
    items: queue.Queue = queue.Queue(maxsize=workers)
    stop = threading.Event()
    parts = [WorkerCounts(RunSummary(load_id=summary.load_id, source=summary.source)) for _ in range(workers)]
    errors: list[BaseException] = []

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        batch: list[Fetched] = []
        size = 0
        try:
            for item in fetch_in_order(source, pending, limits, stop):
                if item.large:
                    if batch and not put(batch):
                        return
                    batch, size = [], 0
                    if not put(item):
                        return
                    continue
                batch.append(item)
                size += len(item.data or b"")
                if len(batch) >= limits.objects or size >= limits.bytes:
                    if not put(batch):
                        return
                    batch, size = [], 0
            if batch:
                put(batch)
        except BaseException as exc:  # handed to the workers, which stop the run with it
            errors.append(exc)
            stop.set()
        finally:
            for _ in range(workers):
                while True:
                    try:
                        items.put(_DONE, timeout=0.1)
                        break
                    except queue.Full:
                        if not stop.is_set():
                            continue  # the workers are busy: wait for room
                        try:  # stopping: what is queued is dropped (counted as left)
                            items.get_nowait()
                        except queue.Empty:
                            pass

    def work(index: int) -> None:
        own = conn if index == 0 else connect()
        copier = Copier(source, own, summary.load_id, parts[index], progress)
        try:
            while True:
                item = items.get()
                if item is _DONE:
                    return
                if stop.is_set():
                    continue
                if should_stop():
                    stop.set()
                    continue
                if isinstance(item, Fetched):
                    copier.copy_object(item.obj)
                else:
                    copier.copy_batch(item)
        except BaseException as exc:
            errors.append(exc)
            stop.set()
        finally:
            if index:
                own.close()

    producer = threading.Thread(target=produce, name="loader-batcher", daemon=True)
    producer.start()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loader-worker") as pool:
        for i in range(workers):
            pool.submit(work, i)
    producer.join()
    for part in parts:
        for name in _COUNTERS:
            setattr(summary, name, getattr(summary, name) + getattr(part.summary, name))
        summary.failures.extend(part.summary.failures)
    if errors:
        raise errors[0]  # e.g. the database went away
    return len(pending) - sum(part.handled for part in parts)
