// Compatibility check of the official ClickHouse JS client against
// sinks/chserver. Usage: CLICKHOUSE_URL=http://127.0.0.1:8123 node test.mjs
// Exits non-zero on any mismatch.
import { ClickHouseError, createClient } from '@clickhouse/client'
import assert from 'node:assert/strict'

const url = process.env.CLICKHOUSE_URL
if (!url) {
  console.error('CLICKHOUSE_URL is not set')
  process.exit(2)
}

const client = createClient({
  url,
  username: 'default',
  password: '',
  compression: { request: true, response: true },
})

try {
  const ping = await client.ping()
  assert.equal(ping.success, true, 'ping failed: ' + JSON.stringify(ping))

  const table = 'js_events_' + process.pid
  await client.command({
    query: `CREATE TABLE ${table} (id UInt32, kind LowCardinality(String), note Nullable(String), tags Array(String), ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id`,
  })

  const rows = []
  for (let i = 0; i < 1000; i++) {
    rows.push({
      id: i,
      kind: ['page_view', 'identify'][i % 2],
      note: i % 3 === 0 ? null : `note "${i}" \\ ' \t`,
      tags: i % 4 === 0 ? [] : ['a', String(i)],
      ts: `2026-01-02 03:04:05.${String(i % 1000).padStart(3, '0')}`,
    })
  }
  const inserted = await client.insert({ table, values: rows, format: 'JSONEachRow' })
  assert.equal(inserted.executed, true, 'insert not executed')

  const rs = await client.query({
    query: `SELECT id, kind, note, tags, ts FROM ${table} WHERE kind = {kind: String} AND id < {max: UInt32} ORDER BY id`,
    query_params: { kind: 'identify', max: 100 },
    format: 'JSONEachRow',
  })
  const got = await rs.json()
  const want = rows.filter((r) => r.kind === 'identify' && r.id < 100)
  assert.equal(got.length, want.length, `got ${got.length} rows, want ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    assert.deepEqual(got[i], want[i], `row ${i} differs`)
  }

  const count = await (await client.query({ query: `SELECT count() AS c FROM ${table}`, format: 'JSONEachRow' })).json()
  assert.equal(Number(count[0].c), 1000)

  // Errors are the client's ClickHouseError carrying ClickHouse's code.
  const unknownTable = (err) => err instanceof ClickHouseError && err.code === '60' && /UNKNOWN_TABLE|Unknown table/.test(err.message)
  await assert.rejects(client.query({ query: 'SELECT * FROM js_missing_table', format: 'JSONEachRow' }), unknownTable)

  // A session's temporary table: its own client reads it, another session does not.
  const session = createClient({ url, username: 'default', password: '', session_id: 'js-tmp-' + process.pid })
  const other = createClient({ url, username: 'default', password: '', session_id: 'js-tmp-other-' + process.pid })
  try {
    await session.command({ query: 'CREATE TEMPORARY TABLE js_tmp (id UInt32, name String)' })
    await session.insert({ table: 'js_tmp', values: [{ id: 2, name: 'y' }, { id: 1, name: 'x' }], format: 'JSONEachRow' })
    const tmp = await (await session.query({ query: 'SELECT id, name FROM js_tmp ORDER BY id', format: 'JSONEachRow' })).json()
    assert.deepEqual(tmp, [{ id: 1, name: 'x' }, { id: 2, name: 'y' }])
    await assert.rejects(other.query({ query: 'SELECT * FROM js_tmp', format: 'JSONEachRow' }), unknownTable)
  } finally {
    await session.close()
    await other.close()
  }
  console.log('ok: js client compatible')
} catch (err) {
  console.error('FAIL:', err)
  process.exitCode = 1
} finally {
  await client.close()
}
