"""The delivery log at a million rows: what ``/deliveries`` and ``/metrics`` read, from the
count tables a trigger and the refusal counter keep, against counting the log itself (what
they did before), measured in the same run on the same database.

    .venv/bin/python -m bench.delivery_log_scale [--rows 1000000] [--db /tmp/deliveries.db]

Builds (once, then reuses) a catalogue whose delivery log holds ``--rows`` deliveries over
30 days (70 % accepted, 20 % duplicates, 10 % refused, a dozen reasons, a thousand source
addresses) through the real migrations, then times each read, best of five.
"""

import argparse
import os
import time

from archive import delivery_log
from archive.catalogue import Catalogue

COUNT_LOG = "SELECT verdict, count(*) FROM deliveries GROUP BY verdict"
REASONS_LOG = ("SELECT CASE WHEN instr(reason, ':') THEN substr(reason, 1, instr(reason, ':')"
               " - 1) ELSE reason END AS kind, count(*) FROM deliveries"
               " WHERE verdict = 'rejected' GROUP BY kind ORDER BY count(*) DESC LIMIT 30")


def build(path, rows):
    """A catalogue with ``rows`` deliveries, their counts and refusal counts as the service
    would have kept them."""
    catalogue = Catalogue(path, synchronous="OFF")
    catalogue.migrate()
    with catalogue.write() as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO deliveries (received_at, source, task_uuid, verdict, reason,"
            " status_code, body_size, remote_addr)"
            " SELECT strftime('%Y-%m-%dT%H:%M:%f', '2026-11-01', '+' || (i * 2592000 / ?)"
            " || ' seconds') || 'Z', 'webhook', 't' || (i % 50000),"
            " CASE WHEN i % 10 = 0 THEN 'rejected' WHEN i % 10 < 3 THEN 'duplicate'"
            " ELSE 'accepted' END,"
            " CASE WHEN i % 10 = 0 THEN 'reason ' || (i % 12) || ': detail' END,"
            " CASE WHEN i % 10 = 0 THEN 403 ELSE 200 END, 400, '10.0.' || (i % 1000 / 250)"
            " || '.' || (i % 250) FROM n", (rows, rows))
        conn.execute(
            "INSERT INTO refusals SELECT substr(received_at, 1, 13), substr(reason, 1,"
            " instr(reason, ':') - 1), remote_addr, count(*) FROM deliveries"
            " WHERE verdict = 'rejected' GROUP BY 1, 2, 3")
    catalogue.conn.execute("ANALYZE")
    return catalogue


def best_ms(function, runs=5):
    """The fastest of ``runs`` calls, in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/deliveries-bench.db")
    args = parser.parse_args()
    if not os.path.exists(args.db):
        build(args.db, args.rows)
    conn = Catalogue(args.db).conn
    total = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    reads = [
        ("metrics: deliveries by verdict", lambda: delivery_log.counts_by_verdict(conn),
         lambda: conn.execute(COUNT_LOG).fetchall()),
        ("/deliveries: reason kinds of 7 days", lambda: delivery_log.reason_kinds(
            conn, "2026-11-24T00"),
         lambda: conn.execute(REASONS_LOG).fetchall()),
        ("/deliveries: refusals of 24 h", lambda: delivery_log.refusal_summary(
            conn, "2026-11-30T00"), None),
        ("/deliveries: newest page", lambda: delivery_log.deliveries(conn), None),
        ("/deliveries: rejected, newest page",
         lambda: delivery_log.deliveries(conn, verdict="rejected"), None),
    ]
    print(f"deliveries in the log: {total:,}")
    for name, now, before in reads:
        ms = best_ms(now)
        line = f"{name:38s} {ms:8.2f} ms"
        if before is not None:
            then = best_ms(before)
            line += f"   counting the log: {then:8.2f} ms   ({then / ms:,.0f} x faster)"
        print(line)


if __name__ == "__main__":
    main()
