-- The least-privileged user binlake needs (binlake check verifies it):
--   REPLICATION SLAVE   read the binlog as a replica
--   REPLICATION CLIENT  SHOW BINARY LOG STATUS / SHOW BINARY LOGS / SHOW REPLICAS
--                       (MariaDB 10.5+: BINLOG MONITOR)
--   SELECT              the initial snapshot and information_schema
--   CREATE, INSERT, DELETE on `binlake`.*
--                       the lock-free snapshot's watermarks (binlake.watermarks, MySQL's
--                       default); never published, emptied as the snapshot goes. Not needed
--                       with snapshot_positions = "read_only" (GTIDs on, no writes at all)
-- No RELOAD: the snapshot takes no FLUSH TABLES WITH READ LOCK unless snapshot_locking =
-- "global". Change the password; binlake reads it from the environment (`password = "${...}"`).
CREATE USER IF NOT EXISTS 'binlake'@'%' IDENTIFIED BY 'binlake-change-me';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'binlake'@'%';
GRANT CREATE, INSERT, DELETE ON `binlake`.* TO 'binlake'@'%';
