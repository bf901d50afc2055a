// fake.mjs: a fake browser for the SDK's unit tests: localStorage,
// navigator (onLine, DNT, GPC, sendBeacon), fetch with scripted answers,
// window/document events and a manual clock with timers.

/** A Storage with an optional quota in characters. */
export class FakeStorage {
  constructor(quota = Infinity) {
    this.m = new Map();
    this.quota = quota;
  }
  getItem(k) {
    return this.m.has(k) ? this.m.get(k) : null;
  }
  setItem(k, v) {
    v = String(v);
    let size = v.length;
    for (const [kk, vv] of this.m) if (kk !== k) size += vv.length;
    if (size > this.quota) throw new Error("QuotaExceededError");
    this.m.set(k, v);
  }
  removeItem(k) {
    this.m.delete(k);
  }
}

/**
 * fakeBrowser returns { env, ... }: env goes to createClient; the rest
 * drives and inspects it. answer(req) decides each fetch: return
 * {status, headers, body} or an Error (network failure).
 */
export function fakeBrowser({ storage = new FakeStorage(), online = true, dnt, gpc, crypto = globalThis.crypto, random = () => 0.5 } = {}) {
  let now = Date.UTC(2026, 10, 28, 12, 0, 0);
  let seq = 0;
  const timers = [];
  const winL = {};
  const docL = {};
  const requests = [];
  const beacons = [];
  const fb = {
    requests,
    beacons,
    beaconResult: true,
    answer: () => ({ status: 200, body: { accepted: 1, rejected: 0 } }),
    env: {
      localStorage: storage,
      navigator: {
        onLine: online,
        language: "en-US",
        doNotTrack: dnt,
        globalPrivacyControl: gpc,
        sendBeacon(url, data) {
          beacons.push({ url, data, body: JSON.parse(data) });
          return fb.beaconResult;
        },
      },
      location: { href: "https://app.example.com/create" },
      document: {
        referrer: "https://www.google.com/",
        visibilityState: "visible",
        addEventListener: (t, f) => (docL[t] ||= []).push(f),
      },
      screen: { width: 2560, height: 1440 },
      history: { pushState() {} },
      crypto,
      fetch(url, init) {
        const req = { url, init, at: now, body: JSON.parse(init.body) };
        requests.push(req);
        const a = fb.answer(req);
        if (a instanceof Error) return Promise.reject(new TypeError("Failed to fetch"));
        const headers = a.headers || {};
        return Promise.resolve({
          status: a.status,
          headers: { get: (k) => headers[k] ?? null },
          json: async () => a.body ?? {},
        });
      },
      addEventListener: (t, f) => (winL[t] ||= []).push(f),
      setTimeout(fn, ms) {
        const id = ++seq;
        timers.push({ id, at: now + Math.max(0, ms || 0), fn });
        return id;
      },
      clearTimeout(id) {
        const i = timers.findIndex((t) => t.id === id);
        if (i >= 0) timers.splice(i, 1);
      },
      now: () => now,
      random: () => random(),
    },
    get now() {
      return now;
    },
    /** Runs the timers due within ms, in order, letting promises settle after each. */
    async advance(ms) {
      const end = now + ms;
      await settle();
      for (;;) {
        timers.sort((a, b) => a.at - b.at || a.id - b.id);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
        await settle();
      }
      now = end;
    },
    /** Fires a window event. */
    async fire(type, ev = {}) {
      for (const f of winL[type] || []) f(ev);
      await settle();
    },
    /** Hides the page (visibilitychange to hidden). */
    async hide() {
      fb.env.document.visibilityState = "hidden";
      for (const f of docL.visibilitychange || []) f({});
      await settle();
    },
    /** Every event of every fetch request, in order. */
    sentEvents() {
      return requests.flatMap((r) => r.body.events);
    },
  };
  return fb;
}

/** Lets pending promise callbacks run. */
export async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
