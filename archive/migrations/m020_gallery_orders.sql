-- Shipped: never edit this file; a change of schema is a new version.
-- Version 20: the gallery's sort orders by size and by cost (archive/ordering.py), each
-- one index walk in either direction at a million results (bench/gallery_orders.py).
--
-- tasks_pixels: tasks by width × height (then by id, the rowid every index ends with).
-- results_cost: results by their own cost (an unknown one as 0), then by id.

CREATE INDEX tasks_pixels ON tasks ((width * height));
CREATE INDEX results_cost ON results (coalesce(cost, 0));
