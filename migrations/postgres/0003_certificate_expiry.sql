-- When the certificate seen by the latest TLS or HTTPS probe expires (epoch
-- ms), so alerts and admins can warn before it does. Rewritten on change.
ALTER TABLE services ADD COLUMN certificate_expires_at BIGINT;
