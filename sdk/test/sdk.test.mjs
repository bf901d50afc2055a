// Unit tests of the SDK's logic on a fake browser (test/fake.mjs), run with
// `node --test test/*.test.mjs` against the ESM build (npm run build first).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, KEYS, MAX_BODY, OPTED_OUT_ID } from "../dist/sdk.mjs";
import { fakeBrowser, FakeStorage, UUID } from "./fake.mjs";

const opts = (o = {}) => ({
  endpoint: "https://t.example.com/",
  writeKey: "wk-0123456789abcdef",
  plan: "pro",
  appVersion: "web-1.2.3",
  autoPageView: false,
  ...o,
});

const genProps = {
  quality: "uhd",
  resolution: "2160p",
  aspect_ratio: "16:9",
  duration_s: 8,
  prompt: "a fox in the snow at dawn",
  model: "v3",
};

test("events are batched by size and sent with fetch to /v1/events", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 4 }), b.env);
  c.track("settings_changed", { setting: "theme", value: "dark" }); // + session_start
  c.track("settings_changed", { setting: "fps", value: "30" });
  await b.advance(0);
  assert.equal(b.requests.length, 0, "sent before the batch was full");
  const id = c.track("settings_changed", { setting: "hdr", value: "on" });
  await b.advance(0);
  assert.equal(b.requests.length, 1);
  const r = b.requests[0];
  assert.equal(r.url, "https://t.example.com/v1/events");
  assert.equal(r.init.method, "POST");
  assert.equal(r.init.keepalive, true);
  assert.equal(r.init.headers.Authorization, "Bearer wk-0123456789abcdef");
  assert.equal(r.init.headers["Content-Type"], "application/json");
  const evs = r.body.events;
  assert.deepEqual(evs.map((e) => e.type), ["session_start", "settings_changed", "settings_changed", "settings_changed"]);
  assert.equal(evs[3].event_id, id);
  const aid = evs[0].anonymous_id;
  for (const e of evs) {
    assert.match(e.event_id, UUID);
    assert.equal(e.anonymous_id, aid);
    assert.match(aid, UUID);
    assert.ok(e.session_id);
    assert.equal(e.plan, "pro");
    assert.deepEqual(e.consent, { analytics: true });
    assert.equal(e.occurred_at, new Date(b.now).toISOString());
    assert.equal(e.sent_at, new Date(b.now).toISOString());
    assert.deepEqual(e.context, {
      page_url: "https://app.example.com/create",
      referrer: "https://www.google.com/",
      locale: "en-US",
      screen: { width: 2560, height: 1440 },
      app_version: "web-1.2.3",
    });
  }
  assert.equal(new Set(evs.map((e) => e.event_id)).size, 4);
  assert.deepEqual(c.stats(), { queued: 0, inflight: 0, sent: 4, rejected: 0, dropped: 0, failures: 0 });
  assert.equal(b.env.localStorage.getItem(KEYS.queue), "[]");
});

test("events are sent flushInterval after the first one was queued", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ flushInterval: 5000 }), b.env);
  c.track("settings_changed", { setting: "theme", value: "dark" });
  await b.advance(2000);
  c.track("settings_changed", { setting: "theme", value: "light" });
  await b.advance(2999);
  assert.equal(b.requests.length, 0);
  await b.advance(1);
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].body.events.length, 3);
});

test("a batch is split to stay under the keepalive budget", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 100, flushInterval: 10 }), b.env);
  const stack = "x".repeat(16000);
  for (let i = 0; i < 8; i++) c.track("client_error", { error_message: "e" + i, error_stack: stack });
  await b.advance(100);
  assert.ok(b.requests.length >= 3, `${b.requests.length} requests`);
  for (const r of b.requests) {
    assert.ok(Buffer.byteLength(r.init.body) <= MAX_BODY, `body of ${r.init.body.length} bytes`);
    assert.equal(r.init.keepalive, true);
  }
  assert.equal(b.sentEvents().length, 9);
  assert.equal(c.stats().queued, 0);
});

test("strings are clipped to the contract's limits; the prompt in characters", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 1 }), b.env);
  c.track("client_error", { error_message: "é".repeat(3000), error_code: "X".repeat(300), prompt: "😀".repeat(2100) });
  await b.advance(0);
  const p = b.sentEvents().find((e) => e.type === "client_error").properties;
  assert.equal(Buffer.byteLength(p.error_message), 2048);
  assert.equal(p.error_code.length, 256);
  assert.equal(Array.from(p.prompt).length, 2000);
});

test("failed sends are retried with exponential backoff, jitter and Retry-After; event_id never changes", async () => {
  const b = fakeBrowser();
  const answers = [new Error("offline"), { status: 500 }, { status: 503, headers: { "Retry-After": "7" } }, { status: 429 }, { status: 200 }];
  b.answer = () => answers.shift();
  const c = createClient(opts({ batchSize: 2, retryBase: 1000, retryMax: 60000 }), b.env);
  c.track("settings_changed", { setting: "a", value: "1" });
  await b.advance(0);
  const at = () => b.requests.map((r) => r.at - b.requests[0].at);
  // random() = 0.5: delay = d/2 + d/4 with d = 1000, 2000, 4000 (→ Retry-After 7 s), 8000.
  await b.advance(749);
  assert.deepEqual(at(), [0]);
  await b.advance(1);
  assert.deepEqual(at(), [0, 750]);
  await b.advance(1500);
  assert.deepEqual(at(), [0, 750, 2250]);
  await b.advance(6999);
  assert.equal(b.requests.length, 3, "retried before Retry-After");
  await b.advance(1);
  assert.deepEqual(at(), [0, 750, 2250, 9250]);
  await b.advance(6000);
  assert.deepEqual(at(), [0, 750, 2250, 9250, 15250]);
  await b.advance(60000);
  assert.equal(b.requests.length, 5, "sent again after success");
  const ids = b.requests.map((r) => r.body.events.map((e) => e.event_id).join());
  assert.equal(new Set(ids).size, 1, "event ids differ between attempts");
  const sentAt = b.requests.map((r) => r.body.events[0].sent_at);
  assert.deepEqual(sentAt, b.requests.map((r) => new Date(r.at).toISOString()), "sent_at is not the attempt's time");
  assert.equal(b.requests[4].body.events[0].occurred_at, b.requests[0].body.events[0].occurred_at);
  assert.deepEqual(c.stats(), { queued: 0, inflight: 0, sent: 2, rejected: 0, dropped: 0, failures: 0 });
});

test("backoff is capped at retryMax and jittered within [d/2, d]", async () => {
  for (const [rnd, want] of [
    [0, 4000],
    [0.999999, 8000],
  ]) {
    const b = fakeBrowser({ random: () => rnd });
    b.answer = () => ({ status: 502 });
    createClient(opts({ batchSize: 1, retryBase: 1000, retryMax: 8000 }), b.env).track("session_start");
    await b.advance(0);
    await b.advance(200000);
    const gaps = b.requests.slice(1).map((r, i) => r.at - b.requests[i].at);
    assert.ok(gaps.length >= 10, `${gaps.length} retries`);
    assert.deepEqual(gaps.slice(0, 3), [want / 8, want / 4, want / 2].map((d) => Math.round(d)));
    assert.ok(gaps.slice(4).every((g) => g === want), `not capped: ${gaps}`);
  }
});

test("refused events (400, 207) are not retried; 2xx after a partial removes the batch", async () => {
  const b = fakeBrowser();
  b.answer = () => ({ status: 207, body: { accepted: 1, rejected: 1 } });
  const c = createClient(opts({ batchSize: 2 }), b.env);
  c.track("settings_changed", { setting: "a", value: "1" });
  await b.advance(0);
  assert.equal(b.requests.length, 1);
  assert.deepEqual([c.stats().sent, c.stats().rejected, c.stats().queued], [1, 1, 0]);
  b.answer = () => ({ status: 400, body: { error: "bad" } });
  c.track("settings_changed", { setting: "b", value: "2" });
  c.track("settings_changed", { setting: "c", value: "3" });
  await b.advance(120000);
  assert.equal(b.requests.length, 2);
  assert.deepEqual([c.stats().sent, c.stats().rejected, c.stats().queued], [1, 3, 0]);
});

test("the offline queue in localStorage is bounded: the oldest are dropped and counted", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage, online: false });
  const c = createClient(opts({ maxQueue: 5 }), b.env);
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push(c.track("settings_changed", { setting: "s" + i, value: "v" }));
  await b.advance(60000);
  assert.equal(b.requests.length, 0, "sent while offline");
  const stored = JSON.parse(storage.getItem(KEYS.queue));
  assert.deepEqual(stored.map((e) => e.event_id), ids.slice(3));
  assert.equal(c.stats().dropped, 4, "session_start and the 3 oldest events dropped");
  // A later page sees the count and sends what was kept, once.
  const b2 = fakeBrowser({ storage });
  const c2 = createClient(opts({ maxQueue: 5 }), b2.env);
  assert.equal(c2.stats().dropped, 4);
  await b2.advance(10);
  assert.deepEqual(b2.sentEvents().map((e) => e.event_id), ids.slice(3));
  await b2.advance(600000);
  assert.equal(b2.requests.length, 1);
});

test("a full localStorage keeps the newest events that fit, and nothing is lost from memory", async () => {
  const storage = new FakeStorage(6000);
  const b = fakeBrowser({ storage, online: false });
  const c = createClient(opts({ maxQueue: 100 }), b.env);
  for (let i = 0; i < 20; i++) c.track("settings_changed", { setting: "s" + i, value: "v" });
  const stored = JSON.parse(storage.getItem(KEYS.queue));
  assert.ok(stored.length > 0 && stored.length < 21, `${stored.length} stored`);
  assert.equal(stored.at(-1).properties.setting, "s19");
  assert.equal(c.stats().queued, 21);
});

test("offline: nothing is sent until the online event, then each event exactly once", async () => {
  const b = fakeBrowser();
  b.answer = (r) => (b.env.navigator.onLine ? { status: 200 } : new Error("offline"));
  const c = createClient(opts({ batchSize: 50, flushInterval: 1000 }), b.env);
  b.env.navigator.onLine = false;
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(c.track("settings_changed", { setting: "s" + i, value: "v" }));
  await b.advance(30000);
  await b.hide();
  assert.equal(b.requests.length + b.beacons.length, 0, "sent while offline");
  b.env.navigator.onLine = true;
  await b.fire("online");
  await b.advance(120000);
  const got = b.sentEvents().map((e) => e.event_id);
  for (const id of ids) assert.equal(got.filter((x) => x === id).length, 1, `event ${id}`);
  assert.equal(c.stats().queued, 0);
});

test("fetch failing (network error) keeps events for the retry, even across a page load", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage });
  b.answer = () => new Error("net");
  const c = createClient(opts({ batchSize: 1 }), b.env);
  const id = c.track("settings_changed", { setting: "a", value: "1" });
  await b.advance(100);
  assert.ok(b.requests.length >= 1);
  const b2 = fakeBrowser({ storage });
  createClient(opts(), b2.env);
  await b2.advance(0);
  assert.deepEqual(b2.sentEvents().map((e) => e.event_id).filter((x) => x === id), [id]);
});

test("pagehide and visibilitychange hand the queue to sendBeacon (text, write key in URL)", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 100, flushInterval: 60000 }), b.env);
  const id = c.track("video_downloaded", { format: "mp4" });
  await b.hide();
  assert.equal(b.beacons.length, 1);
  assert.equal(b.beacons[0].url, "https://t.example.com/v1/beacon?writeKey=wk-0123456789abcdef");
  assert.equal(typeof b.beacons[0].data, "string");
  assert.deepEqual(b.beacons[0].body.events.map((e) => e.type), ["session_start", "video_downloaded"]);
  assert.equal(b.beacons[0].body.events[1].event_id, id);
  assert.ok(b.beacons[0].body.events[1].sent_at);
  assert.equal(c.stats().queued, 0);
  assert.equal(b.env.localStorage.getItem(KEYS.queue), "[]");
  // A refused beacon falls back to one keepalive fetch, handed off like a
  // beacon: out of localStorage, so the next page does not send it again.
  b.beaconResult = false;
  b.answer = () => new Error("net");
  const gif = c.track("video_downloaded", { format: "gif" });
  await b.fire("pagehide");
  assert.equal(b.beacons.length, 2);
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].url, "https://t.example.com/v1/events");
  assert.equal(b.requests[0].init.keepalive, true);
  assert.deepEqual(b.requests[0].body.events.map((e) => e.event_id), [gif]);
  assert.equal(b.env.localStorage.getItem(KEYS.queue), "[]");
});

test("seq numbers a session's events across pages; events after an unload carry the first seq handed over", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage });
  const c = createClient(opts({ batchSize: 100, flushInterval: 60000 }), b.env);
  c.track("settings_changed", { setting: "a", value: "1" }); // + session_start
  await c.flush();
  c.track("settings_changed", { setting: "b", value: "2" });
  c.track("settings_changed", { setting: "c", value: "3" });
  await b.fire("pagehide"); // seq 3 and 4 leave by beacon
  assert.deepEqual(b.sentEvents().map((e) => e.seq), [1, 2]);
  assert.deepEqual(b.beacons[0].body.events.map((e) => [e.seq, e.context.unload_seq]), [[3, undefined], [4, undefined]]);
  // The next page of the session goes on counting and says where the
  // last unload's hand-off began.
  const b2 = fakeBrowser({ storage });
  const c2 = createClient(opts({ batchSize: 1 }), b2.env);
  c2.track("settings_changed", { setting: "d", value: "4" });
  await b2.advance(0);
  const [next] = b2.sentEvents();
  assert.equal(next.seq, 5);
  assert.equal(next.context.unload_seq, 3);
  // A new session starts again at 1, without the old session's unload.
  c2.reset();
  c2.track("settings_changed", { setting: "e", value: "5" });
  await b2.advance(100);
  const fresh = b2.sentEvents().slice(1);
  assert.deepEqual(fresh.map((e) => [e.type, e.seq, e.context.unload_seq]), [["session_start", 1, undefined], ["settings_changed", 2, undefined]]);
  // Opted out: no session, no numbers.
  c2.optOut();
  c2.track("settings_changed", { setting: "f", value: "6" });
  await b2.advance(100);
  const out = b2.sentEvents().at(-1);
  assert.equal(out.seq, undefined);
});

test("after pagehide the page sends nothing more; what is left is the next page's", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage, online: false });
  const c = createClient(opts({ batchSize: 1, flushInterval: 100 }), b.env);
  const id = c.track("settings_changed", { setting: "a", value: "1" });
  await b.fire("pagehide"); // offline: no beacon, the queue stays stored
  b.env.navigator.onLine = true;
  await b.fire("online");
  await b.advance(60000);
  assert.equal(b.requests.length + b.beacons.length, 0, "a hidden page sent");
  assert.equal(JSON.parse(storage.getItem(KEYS.queue)).length, 2);
  // Back from the back/forward cache, it sends again.
  await b.fire("pageshow", { persisted: true });
  await b.advance(0);
  assert.ok(b.sentEvents().some((e) => e.event_id === id));
});

test("a last keepalive fetch at unload leaves localStorage: the next page does not resend it", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage });
  b.beaconResult = false;
  b.env.fetch = () => new Promise(() => {}); // the page dies before the answer
  const c = createClient(opts({ batchSize: 100, flushInterval: 60000 }), b.env);
  c.track("settings_changed", { setting: "a", value: "1" });
  await b.fire("pagehide");
  assert.equal(c.stats().inflight, 2);
  assert.equal(storage.getItem(KEYS.queue), "[]");
});

test("without sendBeacon, unload uses a keepalive fetch", async () => {
  const b = fakeBrowser();
  delete b.env.navigator.sendBeacon;
  const c = createClient(opts({ batchSize: 100, flushInterval: 60000 }), b.env);
  c.track("video_downloaded", { format: "mp4" });
  await b.hide();
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].init.keepalive, true);
  assert.equal(b.requests[0].body.events.length, 2);
  assert.equal(c.stats().queued, 0);
});

test("events in flight are not beaconed again at unload", async () => {
  const b = fakeBrowser();
  let release;
  b.answer = () => ({ status: 200 });
  const c = createClient(opts({ batchSize: 2 }), b.env);
  const fetch = b.env.fetch;
  b.env.fetch = (u, i) => new Promise((res) => (release = () => res(fetch(u, i))));
  c.track("settings_changed", { setting: "a", value: "1" });
  await b.advance(0);
  assert.equal(c.stats().inflight, 2);
  const late = c.track("settings_changed", { setting: "b", value: "2" });
  await b.fire("pagehide");
  assert.deepEqual(b.beacons.flatMap((x) => x.body.events.map((e) => e.event_id)), [late]);
  release();
  await b.advance(0);
  assert.equal(c.stats().queued, 0);
});

test("optOut strips identifiers and the prompt, persists, and optIn brings new ids", async () => {
  const storage = new FakeStorage();
  const b = fakeBrowser({ storage });
  const c = createClient(opts({ batchSize: 100, userId: "user-42" }), b.env);
  c.identify("user-42");
  const before = c.track("generation_requested", genProps);
  const oldAid = storage.getItem(KEYS.anonymousId);
  c.optOut();
  assert.equal(c.isOptedOut(), true);
  assert.equal(storage.getItem(KEYS.optOut), "1");
  assert.equal(storage.getItem(KEYS.anonymousId), null);
  const after = c.generationRequested(genProps);
  after.completed();
  await c.flush();
  const evs = b.sentEvents();
  assert.ok(!evs.some((e) => e.type === "identify"), "identify without user_id would be invalid");
  assert.ok(evs.some((e) => e.event_id === before) && evs.some((e) => e.event_id === after.event_id));
  for (const e of evs) {
    assert.equal(e.anonymous_id, OPTED_OUT_ID, e.type);
    assert.equal(e.user_id, undefined);
    assert.equal(e.session_id, undefined);
    assert.equal(e.properties.prompt, undefined);
    assert.equal(e.consent.analytics, false);
    assert.equal(e.plan, "pro");
  }
  assert.ok(!JSON.stringify(evs).includes("user-42") && !JSON.stringify(evs).includes(oldAid));
  assert.equal(evs.find((e) => e.type === "generation_completed").properties.generation_id, after.generation_id);
  // Persisted: the next page is opted out too.
  const b2 = fakeBrowser({ storage });
  const c2 = createClient(opts({ batchSize: 1, userId: "user-42" }), b2.env);
  assert.equal(c2.isOptedOut(), true);
  c2.track("generation_requested", genProps);
  await b2.advance(0);
  assert.ok(b2.sentEvents().every((e) => e.anonymous_id === OPTED_OUT_ID && !e.user_id && !e.properties.prompt));
  c2.optIn();
  c2.track("generation_requested", genProps);
  await b2.advance(0);
  const e = b2.sentEvents().at(-1);
  assert.equal(e.consent.analytics, true);
  assert.equal(e.user_id, "user-42");
  assert.equal(e.properties.prompt, genProps.prompt);
  assert.match(e.anonymous_id, UUID);
  assert.notEqual(e.anonymous_id, oldAid);
});

for (const [name, env, o] of [
  ["DNT", { dnt: "1" }, {}],
  ["GPC", { gpc: true }, {}],
  ["consent: false", {}, { consent: false }],
]) {
  test(`${name} is an opt-out`, async () => {
    const b = fakeBrowser(env);
    const c = createClient(opts({ batchSize: 1, userId: "user-7", ...o }), b.env);
    assert.equal(c.isOptedOut(), true);
    c.identify("user-7");
    c.track("generation_requested", genProps);
    await b.advance(0);
    const evs = b.sentEvents();
    assert.deepEqual(evs.map((e) => e.type), ["generation_requested"]);
    assert.equal(evs[0].consent.analytics, false);
    assert.equal(evs[0].anonymous_id, OPTED_OUT_ID);
    for (const k of ["user_id", "session_id"]) assert.equal(evs[0][k], undefined);
    assert.equal(evs[0].properties.prompt, undefined);
    assert.equal(evs[0].properties.quality, "uhd");
    assert.equal(b.env.localStorage.getItem(KEYS.anonymousId), null, "an id was stored");
  });
}

test("DNT and GPC are ignored when respectDNT/respectGPC are false; DNT other than '1' is not an opt-out", () => {
  assert.equal(createClient(opts({ respectDNT: false }), fakeBrowser({ dnt: "1" }).env).isOptedOut(), false);
  assert.equal(createClient(opts({ respectGPC: false }), fakeBrowser({ gpc: true }).env).isOptedOut(), false);
  assert.equal(createClient(opts(), fakeBrowser({ dnt: "0" }).env).isOptedOut(), false);
});

test("generation lifecycle shares generation_id and measures latency_ms", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 100 }), b.env);
  const g = c.generationRequested(genProps);
  await b.advance(1234);
  g.completed({ width: 3840, height: 2160 });
  await b.advance(500);
  g.downloaded("mp4");
  const f = c.generationRequested({ ...genProps, generation_id: "gen-own-id" });
  await b.advance(0.4);
  f.failed("GPU_OOM", "out of memory at 2160p");
  await c.flush();
  const evs = b.sentEvents().filter((e) => e.type !== "session_start");
  assert.deepEqual(evs.map((e) => e.type), [
    "generation_requested",
    "generation_completed",
    "video_downloaded",
    "generation_requested",
    "generation_failed",
  ]);
  const [req, done, dl, req2, fail] = evs;
  assert.match(g.generation_id, /^gen_[0-9a-f]{32}$/);
  for (const e of [req, done, dl]) assert.equal(e.properties.generation_id, g.generation_id);
  assert.equal(req.event_id, g.event_id);
  assert.equal(req.properties.prompt, genProps.prompt);
  assert.deepEqual(done.properties, {
    quality: "uhd", resolution: "2160p", aspect_ratio: "16:9", duration_s: 8, model: "v3",
    generation_id: g.generation_id, latency_ms: 1234, width: 3840, height: 2160,
  });
  assert.equal(dl.properties.format, "mp4");
  assert.equal(dl.properties.prompt, undefined);
  assert.equal(req2.properties.generation_id, "gen-own-id");
  assert.equal(fail.properties.generation_id, "gen-own-id");
  assert.equal(fail.properties.error_code, "GPU_OOM");
  assert.equal(fail.properties.error_message, "out of memory at 2160p");
  assert.equal(fail.properties.latency_ms, 1, "latency is at least 1 ms");
});

test("page_view at init and on history navigation", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ autoPageView: true, batchSize: 100 }), b.env);
  b.env.location.href = "https://app.example.com/explore";
  b.env.history.pushState({}, "", "/explore");
  await b.fire("popstate"); // same URL: no second page_view
  await c.flush();
  const pv = b.sentEvents().filter((e) => e.type === "page_view");
  assert.deepEqual(pv.map((e) => e.context.page_url), ["https://app.example.com/create", "https://app.example.com/explore"]);
});

test("window errors and unhandled rejections become client_error, at most 25 per page", async () => {
  const b = fakeBrowser();
  const c = createClient(opts({ batchSize: 1000 }), b.env);
  await b.fire("error", { message: "Uncaught TypeError: x is undefined", error: { stack: "TypeError: x\n at f (app.js:1:2)" } });
  await b.fire("unhandledrejection", { reason: { message: "fetch failed", stack: "Error: fetch failed" } });
  await b.fire("unhandledrejection", { reason: "plain string" });
  await b.fire("error", {}); // a resource error has no message
  for (let i = 0; i < 40; i++) await b.fire("error", { message: "loop " + i });
  await c.flush();
  const errs = b.sentEvents().filter((e) => e.type === "client_error");
  assert.equal(errs.length, 25);
  assert.deepEqual(errs[0].properties, {
    error_code: "uncaught_error",
    error_message: "Uncaught TypeError: x is undefined",
    error_stack: "TypeError: x\n at f (app.js:1:2)",
  });
  assert.deepEqual(errs[1].properties, { error_code: "unhandled_rejection", error_message: "fetch failed", error_stack: "Error: fetch failed" });
  assert.equal(errs[2].properties.error_message, "plain string");
});

test("event_id falls back to getRandomValues, then Math.random, as RFC 4122 v4", () => {
  for (const crypto of [{ getRandomValues: (a) => globalThis.crypto.getRandomValues(a) }, undefined]) {
    const b = fakeBrowser({ crypto, random: Math.random });
    const c = createClient(opts(), b.env);
    const ids = new Set();
    for (let i = 0; i < 50; i++) ids.add(c.track("session_start"));
    assert.equal(ids.size, 50);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
});

test("a broken localStorage does not break tracking", async () => {
  const b = fakeBrowser();
  Object.defineProperty(b.env, "localStorage", { get: () => { throw new Error("SecurityError"); } });
  const c = createClient(opts({ batchSize: 1 }), b.env);
  c.track("settings_changed", { setting: "a", value: "1" });
  await b.advance(0);
  assert.equal(b.sentEvents().length, 2);
});
