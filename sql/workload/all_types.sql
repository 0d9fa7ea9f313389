-- Every column type binlake decodes, with edge values, written through every kind of change:
-- multi-row inserts, updates (a primary-key change among them), deletes, DDL between DML,
-- a latin1 table, a table without a primary key, TRUNCATE.
-- Run by scripts/gen-mariadb-fixture.sh and by the MariaDB replay test; the replayed final state
-- of each table must equal what SELECT returns afterwards.
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION';
SET SESSION time_zone = '+00:00';
DROP DATABASE IF EXISTS binlake_types;
CREATE DATABASE binlake_types;
USE binlake_types;

CREATE TABLE all_types (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  t_tiny TINYINT,
  t_tiny_u TINYINT UNSIGNED,
  t_small SMALLINT,
  t_small_u SMALLINT UNSIGNED,
  t_medium MEDIUMINT,
  t_medium_u MEDIUMINT UNSIGNED,
  t_int INT,
  t_int_u INT UNSIGNED,
  t_big BIGINT,
  t_big_u BIGINT UNSIGNED,
  t_dec_small DECIMAL(10,2),
  t_dec_big DECIMAL(65,30),
  t_dec_int DECIMAL(20,0),
  t_float FLOAT,
  t_double DOUBLE,
  t_bit1 BIT(1),
  t_bit5 BIT(5),
  t_bit64 BIT(64),
  t_date DATE,
  t_dt0 DATETIME,
  t_dt3 DATETIME(3),
  t_dt6 DATETIME(6),
  t_ts0 TIMESTAMP NULL DEFAULT NULL,
  t_ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  t_time0 TIME,
  t_time6 TIME(6),
  t_year YEAR,
  t_char CHAR(10),
  t_varchar VARCHAR(300),
  t_text TEXT,
  t_mediumtext MEDIUMTEXT,
  t_binary BINARY(4),
  t_varbinary VARBINARY(20),
  t_blob BLOB,
  t_longblob LONGBLOB,
  t_enum ENUM('small','medium','large'),
  t_set SET('a','b','c','d'),
  t_json JSON,
  t_geo GEOMETRY
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT INTO all_types VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -12345678.90, 12345678901234567890123456789012345.123456789012345678901234567890, 99999999999999999999,
  3.25, -2.5e300, b'1', b'10101', b'1111111111111111111111111111111111111111111111111111111111111111',
  '1000-01-01', '1000-01-01 00:00:00', '2024-02-29 13:05:07.123', '9999-12-31 23:59:59.999999',
  '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999',
  '-838:59:59', '838:59:59.000000', 1901,
  'char', 'héllo wörld ✓ 𝄞', 'text with\nnewline and "quotes" and \\ backslash', REPEAT('m', 70000),
  x'00ff10ab', x'deadbeef00', x'000102', REPEAT(x'ab', 100000),
  'small', 'a,c', '{"k": [1, 2.5, "x", null, true], "n": {"deep": -7}}', ST_GeomFromText('POINT(1.5 -2.25)', 4326)),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0.00, -0.000000000000000000000000000001, -1,
  0, 0, b'0', b'0', b'0',
  '2000-01-01', '2000-01-01 00:00:00', '2000-01-01 00:00:00.000', '2000-01-01 00:00:00.000000',
  '2000-01-01 00:00:00', '2000-01-01 00:00:00.000001',
  '00:00:00', '-00:00:00.000001', 2155,
  '', '', '', '',
  x'00000000', x'', x'', x'',
  'large', '', '[]', ST_GeomFromText('LINESTRING(0 0, 1 1, 2 0)', 0)),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Zero dates, allowed without NO_ZERO_DATE.
INSERT INTO all_types (id, t_date, t_dt0, t_dt6, t_year, t_time6)
  VALUES (4, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', 0, '-12:30:00.5');

-- Updates: values, then a primary-key change, in one multi-statement transaction.
START TRANSACTION;
UPDATE all_types SET t_int = t_int + 1, t_varchar = CONCAT(t_varchar, '!'), t_set = 'b,d' WHERE id = 2;
UPDATE all_types SET id = 20 WHERE id = 2;
UPDATE all_types SET t_json = JSON_SET(t_json, '$.n.deep', 8), t_enum = 'medium' WHERE id = 1;
COMMIT;

-- DDL between DML: a new column, then rows that carry it.
ALTER TABLE all_types ADD COLUMN t_added VARCHAR(20) DEFAULT 'dflt' AFTER t_int;
INSERT INTO all_types (id, t_added, t_int) VALUES (5, 'after-ddl', 55), (6, NULL, 66);
UPDATE all_types SET t_added = 'changed' WHERE id = 1;
DELETE FROM all_types WHERE id = 6;

-- Insert, delete and insert the same key again in one transaction.
START TRANSACTION;
INSERT INTO all_types (id, t_varchar) VALUES (7, 'first');
DELETE FROM all_types WHERE id = 7;
INSERT INTO all_types (id, t_varchar) VALUES (7, 'second');
COMMIT;

-- latin1 text.
CREATE TABLE latin (
  id INT PRIMARY KEY,
  name VARCHAR(40) CHARACTER SET latin1,
  note TEXT CHARACTER SET latin1
) DEFAULT CHARSET=latin1;
INSERT INTO latin VALUES (1, 'café crème', 'Grüße, €uro'), (2, 'plain', NULL);

-- No primary key: rows are identified by all their columns.
CREATE TABLE no_pk (a INT, b VARCHAR(10));
INSERT INTO no_pk VALUES (1, 'x'), (2, 'y'), (2, 'y');
DELETE FROM no_pk WHERE a = 1;

-- TRUNCATE, then new rows.
CREATE TABLE truncated (id INT PRIMARY KEY, v INT);
INSERT INTO truncated VALUES (1, 1), (2, 2);
TRUNCATE TABLE truncated;
INSERT INTO truncated VALUES (3, 3);

-- A rename: later changes arrive under the new name.
CREATE TABLE old_name (id INT PRIMARY KEY, v VARCHAR(5));
INSERT INTO old_name VALUES (1, 'one');
RENAME TABLE old_name TO new_name;
INSERT INTO new_name VALUES (2, 'two');
