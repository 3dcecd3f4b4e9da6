-- Cost that follows change, and a page that follows a write within 2 s
-- (issues 16 and 18). Row 1 of store_changes counts every write that
-- changes the page; row 2 only those a reader must see at once: an
-- incident or its update, maintenance, a service's state change, the
-- services' sync. A replica rations its rebuilds after the monitor's
-- routine writes (results, last checks) to a share of a core, but row 2
-- moving ends that wait. A replica of the previous release moves only
-- row 1: during a rolling upgrade its urgent writes show at the next
-- rationed rebuild, as before.
INSERT INTO store_changes (id, counter) VALUES (2, 0);
