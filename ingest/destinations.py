"""Where a request's events go, made once per process.

Accepted events: to the Firehose delivery stream when FIREHOSE_STREAM_NAME is set (``firehose``
mode: Firehose buffers them into few large objects under ``events/``), else as one S3 object per
request (``direct`` mode, what the local server uses). Rejected events: always one S3 object per
request under ``rejected/``."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ingest.cookieless import SaltStore
from ingest.firehose import FirehoseWriter
from ingest.settings import Settings
from ingest.storage import S3Writer


@dataclass(frozen=True)
class Destinations:
    s3: S3Writer
    firehose: FirehoseWriter | None = None
    salts: SaltStore | None = None

    @property
    def max_event_bytes(self) -> int | None:
        """The largest accepted event (as one NDJSON line) the destination takes, if limited."""
        return self.firehose.max_line_bytes if self.firehose else None


@functools.cache
def get_destinations(settings: Settings) -> Destinations:
    """The process's destinations for these settings."""
    firehose = FirehoseWriter(settings) if settings.firehose_stream_name else None
    s3 = S3Writer(settings)
    return Destinations(s3=s3, firehose=firehose, salts=SaltStore(settings, s3.client))
