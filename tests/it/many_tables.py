"""Reads every silver table of the `many` database (tests/it/many_tables.rs) with Python's
deltalake and prints how many there are and how many hold exactly the rows the workload left:
(1, 'a'), (2, 'B'), (3, 'c')."""
import os, sys
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
root = sys.argv[1]
names = sorted(os.listdir(os.path.join(root, "silver", "many")))
tables = [n for n in names if not n.endswith("__history")]
good = 0
for n in tables:
    try:
        dt = DeltaTable(os.path.join(root, "silver", "many", n))
    except Exception:
        continue  # being created: its first commit is not there yet
    rows = pa.table(QueryBuilder().register("t", dt).execute("SELECT id, v FROM t ORDER BY id")).to_pylist()
    if [(r["id"], r["v"]) for r in rows] == [(1, "a"), (2, "B"), (3, "c")]:
        good += 1
print(len(tables), good)
