-- The least-privileged user binlake needs (binlake check verifies it):
--   REPLICATION SLAVE  read the binlog as a replica
--   REPLICATION CLIENT SHOW MASTER STATUS / SHOW BINARY LOGS (MariaDB 10.5+: BINLOG MONITOR)
--   SELECT             the initial snapshot and information_schema
--   RELOAD             MySQL only: the snapshot's brief FLUSH TABLES WITH READ LOCK per chunk
-- Change the password; binlake reads it from the environment (`password = "${...}"`).
CREATE USER IF NOT EXISTS 'binlake'@'%' IDENTIFIED BY 'binlake-change-me';
GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT, RELOAD ON *.* TO 'binlake'@'%';
