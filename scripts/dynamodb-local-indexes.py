#!/usr/bin/env python3
"""Adds indexes to the stream tables of a file-backed DynamoDB Local.

Usage: dynamodb-local-indexes.py ENDPOINT DB_FILE

Why: DynamoDB Local 3.3 keeps every stream record it ever received (of
deleted tables too, for 24 hours) in one SQLite table, `us`, keyed by
sequence number only. Every write to a table with a stream looks up its
stream's shards with a query over `us` by stream id, without an index: a
full scan of all stream records the server holds, on the one thread that
serves every request. Measured: after 18,000 stream records of earlier
tables, a PutItem on a newly streamed table took 9.6 ms instead of 1.8 ms,
and the online-migration tests, which stream tens of thousands of records
each, stalled the whole server for minutes once a few had run. With the
indexes below the same PutItem took 2.0 ms. The real service has no such
cost; this keeps the shared test server honest about what the code does.

The schema is created on the server's first request, so one ListTables is
sent first. Any failure is reported and ignored: the tests then run, only
slower.
"""

import json
import sqlite3
import sys
import time
import urllib.request

INDEXES = [
    "CREATE INDEX IF NOT EXISTS singletable_us_stream_seq ON us(StreamID, SequenceNumber)",
    "CREATE INDEX IF NOT EXISTS singletable_us_shard_seq ON us(ShardID, SequenceNumber)",
    "CREATE INDEX IF NOT EXISTS singletable_ss_stream ON ss(StreamID)",
]


def list_tables(endpoint: str) -> None:
    request = urllib.request.Request(
        endpoint,
        data=json.dumps({}).encode(),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            # DynamoDB Local checks that a signature is there, not what it says.
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-target, Signature=0",
            "X-Amz-Date": "20260101T000000Z",
        },
    )
    urllib.request.urlopen(request, timeout=10).read()


def main() -> int:
    endpoint, db_file = sys.argv[1], sys.argv[2]
    try:
        list_tables(endpoint)
        deadline = time.time() + 20
        while True:
            db = sqlite3.connect(db_file, timeout=10)
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if {"us", "ss"} <= names:
                break
            db.close()
            if time.time() > deadline:
                raise RuntimeError(f"no stream tables in {db_file} (found {sorted(names)})")
            time.sleep(0.2)
        for sql in INDEXES:
            db.execute(sql)
        db.commit()
        db.close()
    except Exception as e:  # noqa: BLE001 - any failure only costs speed
        print(f"dynamodb-local-indexes: not added ({e}); stream-heavy tests will run slower", file=sys.stderr)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
