"""The audit trail's writer: a request that returns member data waits until its audit row is committed.

Rows are appended by one background thread, as many per transaction as are waiting (group commit), so
concurrent requests share a commit (and its fsync) instead of queueing behind one another, and the event
loop never waits on a commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Sequence

from stars_assets.lib.documents.store import AuditRow, DocumentStore

MAX_BATCH = 1000


class AuditWriter:
    def __init__(self, store: DocumentStore):
        self.store = store
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    async def record(self, key_id: str, endpoint: str, member_ids: Sequence[str]) -> None:
        done: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((AuditRow(key_id, endpoint, list(member_ids)), done))
        await asyncio.wrap_future(done)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(following)
            try:
                self.store.record_accesses([row for row, _ in batch])
            except Exception as error:  # the requests fail rather than return member data unaudited
                for _, done in batch:
                    done.set_exception(error)
            else:
                for _, done in batch:
                    done.set_result(None)
