-- Shipped: never edit this file; a change of schema is a new version.
-- Version 15: refused deliveries are counted, not all kept. Anyone can POST a forged
-- token, and every refusal written in full grew the catalogue without bound (68,000
-- forged posts in 30 s added 13.5 MB) until real webhooks answered 503.
--
-- refusals: one row per hour, reason kind and source address, with a count; the
--   delivery log keeps a capped sample of the refused bodies (archive/delivery_log.py).
-- delivery_counts: deliveries ever received by verdict, kept by a trigger, so /metrics
--   reads a few rows instead of counting a million, and pruning the log (its retention)
--   never makes a Prometheus counter go down.

CREATE TABLE refusals (hour TEXT NOT NULL, reason TEXT NOT NULL, remote_addr TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (hour, reason, remote_addr)) WITHOUT ROWID;

-- The refusals logged before this version; the reason's kind is the text before its
-- first colon.
INSERT INTO refusals SELECT substr(received_at, 1, 13),
  CASE WHEN instr(reason, ':') THEN substr(reason, 1, instr(reason, ':') - 1)
  ELSE coalesce(reason, '') END,
  coalesce(remote_addr, ''), count(*)
FROM deliveries WHERE verdict = 'rejected' GROUP BY 1, 2, 3;

CREATE TABLE delivery_counts (verdict TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;

-- The deliveries logged before this version.
INSERT INTO delivery_counts SELECT verdict, count(*) FROM deliveries GROUP BY verdict;

-- Counted as each delivery is logged, so pruning the log leaves the counts.
CREATE TRIGGER deliveries_counted AFTER INSERT ON deliveries BEGIN INSERT INTO delivery_counts VALUES (new.verdict, 1) ON CONFLICT (verdict) DO UPDATE SET count = count + 1; END;

