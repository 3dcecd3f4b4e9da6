-- Cost that follows change, with several replicas (issue 16). A write to a
-- service's row now takes its revision from one sequence instead of adding
-- one to its own: still a different value on every write (the snapshot's
-- comparison of each shown row with what it last read, 0013, stays the
-- authority), and now also ordered across rows, so a rebuild between two
-- of those comparisons reads only the rows whose revision is above what an
-- earlier read saw (`Store::page_changes`, through the index below)
-- instead of all 30,000 versions every second on every replica. A
-- transaction that commits late can slip under that mark: the next
-- comparison of every row (within about ten seconds) catches it, as it
-- does the `revision + 1` of a replica of the previous release (a write
-- by this release takes the greater of the sequence's next value and the
-- row's revision plus one, so a row's revision always moves).
CREATE SEQUENCE service_revisions;
SELECT setval('service_revisions', (SELECT coalesce(max(revision), 0) + 1 FROM services));
CREATE INDEX services_revision ON services (revision);
