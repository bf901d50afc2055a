"""clickhouse-connect (the driver under Superset), unchanged, against the
embedded engine's HTTP interface: connect, a parameterised query, an
insert read back, a session's setting, a session's temporary table that
another client's session does not see, and a typed error for a bad query.
Exits non-zero on the first failed check."""
import datetime
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
at = datetime.datetime(2026, 12, 1, 12, 0, 0, 123000)
client.insert("default.pyclient", [[1, "a", at], [2, "b", at]], column_names=["id", "name", "at"])
rows = client.query("SELECT id, name, at FROM default.pyclient ORDER BY id").result_rows
check("insert read back", [(r[0], r[1], r[2].replace(tzinfo=None)) for r in rows], [(1, "a", at), (2, "b", at)])
client.command("SET max_result_rows = 77")  # kept by the client's session
check("session setting", client.query("SELECT getSetting('max_result_rows')").result_rows, [(77,)])

# The client opens a session of its own (session_id), so its temporary
# table is seen by it and not by another client.
client.command("CREATE TEMPORARY TABLE pyclient_tmp (id UInt32, name String)")
client.insert("pyclient_tmp", [[2, "y"], [1, "x"]], column_names=["id", "name"])
check("temporary table read back", client.query("SELECT id, name FROM pyclient_tmp ORDER BY id").result_rows, [(1, "x"), (2, "y")])
other = clickhouse_connect.get_client(host=host, port=port, username="default")


def error_code(c, sql):
    """The code of the DatabaseError a query raises."""
    try:
        c.query(sql)
    except DatabaseError as e:
        return e.code
    sys.exit(f"{sql!r} succeeded")


check("another session's temporary table: error code", error_code(other, "SELECT * FROM pyclient_tmp"), 60)
check("typed error code", error_code(client, "SELECT * FROM default.no_such_table"), 60)
client.command("DROP TABLE default.pyclient")
print("ok")
