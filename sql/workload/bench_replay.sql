-- The replay benchmark's workload: 1M inserts, 200k updates, 100k deletes of a 7-column row
-- (INT UNSIGNED pk, INT, CHAR(120), CHAR(60), DECIMAL(12,2), DATETIME(6), JSON), written with
-- MariaDB's Sequence engine so 1.3M row changes take seconds. Used by scripts/bench-replay.sh.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
DROP DATABASE IF EXISTS binlake_bench;
CREATE DATABASE binlake_bench;
USE binlake_bench;
CREATE TABLE rows7 (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  qty INT NOT NULL,
  title CHAR(120) NOT NULL,
  tag CHAR(60) NOT NULL,
  price DECIMAL(12,2) NOT NULL,
  created DATETIME(6) NOT NULL,
  attrs JSON
) ENGINE=InnoDB;
INSERT INTO rows7
  SELECT seq, seq * 7 % 1000, CONCAT('title ', seq, ' ', REPEAT('x', 90)), CONCAT('tag-', seq % 97),
         (seq % 100000) / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND + INTERVAL seq % 1000000 MICROSECOND,
         CONCAT('{"n": ', seq, ', "color": "c', seq % 13, '", "ok": true}')
  FROM seq_1_to_1000000;
UPDATE rows7 SET qty = qty + 1, price = price + 1 WHERE id % 5 = 0;
DELETE FROM rows7 WHERE id % 10 = 3;
