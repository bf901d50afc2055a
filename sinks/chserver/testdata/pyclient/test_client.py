"""clickhouse-connect (the driver under Superset), unchanged, against the
embedded engine's HTTP interface: connect, a parameterised query, an
insert read back, a session's setting, and a typed error for a bad query.
Exits non-zero on the first failed check."""
import os
import sys

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError

host, port = os.environ["CLICKHOUSE_HOST"], int(os.environ["CLICKHOUSE_PORT"])
client = clickhouse_connect.get_client(host=host, port=port, username="default")


def check(what, got, want):
    print(f"{what}: {got!r}")
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


check("select", client.query("SELECT 1").result_rows, [(1,)])
check("parameters", client.query("SELECT {x:UInt32} + 1 AS y, {s:String} AS s", parameters={"x": 41, "s": "it's"}).result_rows, [(42, "it's")])
client.command("DROP TABLE IF EXISTS default.pyclient")
client.command("CREATE TABLE default.pyclient (id UInt32, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id")
import datetime
at = datetime.datetime(2026, 12, 1, 12, 0, 0, 123000)
client.insert("default.pyclient", [[1, "a", at], [2, "b", at]], column_names=["id", "name", "at"])
rows = client.query("SELECT id, name, at FROM default.pyclient ORDER BY id").result_rows
check("insert read back", [(r[0], r[1], r[2].replace(tzinfo=None)) for r in rows], [(1, "a", at), (2, "b", at)])
client.command("SET max_result_rows = 77")  # kept by the client's session
check("session setting", client.query("SELECT getSetting('max_result_rows')").result_rows, [(77,)])
try:
    client.query("SELECT * FROM default.no_such_table")
    sys.exit("a query of a missing table succeeded")
except DatabaseError as e:
    check("typed error code", getattr(e, "code", None) or ("Code: 60." in str(e) and 60), 60)
client.command("DROP TABLE default.pyclient")
print("ok")
