"""Reads one binlake table with every engine tests/it/readers.rs checks, printing per engine
either its rows in a canonical text form or the error it raised:

    <engine>|rows|<id>|<dt>|<ts>|<day>|<amount>|<ratio>|<big>|<name>|<note>
    <engine>|error|<exception type>: <message>

plus `protocol|<min reader version>|<reader features>` and `type|dt|<Delta type>`. DATETIME is
printed as the wall clock of its UTC reading, TIMESTAMP in UTC."""
import datetime
import glob
import os
import sys

import duckdb
import duckdb_extension_delta
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

path = sys.argv[1]
COLUMNS = ["id", "dt", "ts", "day", "amount", "ratio", "big", "name", "note"]


def show(v):
    if v is None:
        return "NULL"
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if hasattr(v, "to_pydatetime"):  # pandas Timestamp
        return show(v.to_pydatetime())
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float):
        return repr(v)
    return str(v)


def emit(engine, rows):
    for r in sorted(rows, key=lambda r: r[0]):
        print(engine + "|rows|" + "|".join(show(v) for v in r))


def attempt(engine, read):
    try:
        emit(engine, read())
    except Exception as e:  # the failure is the result: the test compares it with the docs
        message = str(e).splitlines()[0] if str(e) else ""
        print(f"{engine}|error|{type(e).__name__}: {message}")


dt = DeltaTable(path)
protocol = dt.protocol()
print(f"protocol|{protocol.min_reader_version}|{','.join(sorted(protocol.reader_features or []))}")
print(f"type|dt|{pa.schema(dt.schema().to_arrow()).field('dt').type}")


def pyarrow_rows():
    t = dt.to_pyarrow_table(columns=COLUMNS)
    return [tuple(r[c] for c in COLUMNS) for r in t.to_pylist()]


def pandas_rows():
    df = dt.to_pandas(columns=COLUMNS)
    return [tuple(None if (v is None or v != v) else v for v in r) for r in df.itertuples(index=False)]


def query_builder_rows():
    result = QueryBuilder().register("t", dt).execute(f"SELECT {', '.join(COLUMNS)} FROM t")
    t = pa.table(result)
    return [tuple(r[c] for c in COLUMNS) for r in t.to_pylist()]


def duckdb_rows():
    con = duckdb.connect()
    ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
    con.load_extension(ext)
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f"SELECT {', '.join(COLUMNS)} FROM delta_scan('{path}')").fetchall()


def polars_rows():
    return pl.read_delta(path).select(COLUMNS).rows()


attempt("deltalake.to_pyarrow_table", pyarrow_rows)
attempt("deltalake.to_pandas", pandas_rows)
attempt("deltalake.QueryBuilder", query_builder_rows)
attempt("duckdb", duckdb_rows)
attempt("polars", polars_rows)
sys.stdout.flush()
# deltalake's runtime threads can abort the interpreter's teardown on a busy machine; the
# output is complete here.
os._exit(0)
