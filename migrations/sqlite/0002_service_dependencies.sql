-- The dependencies a service's health document reported at its latest probe,
-- as a JSON array of {"name","health","output","observed"}. Rewritten only
-- when it changes. The public page shows names and states; outputs are for
-- admins.
ALTER TABLE services ADD COLUMN dependencies TEXT;
