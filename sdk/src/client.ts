import type { Client, Env, EventType, Generation, Options, Properties, Stats, StorageLike, WireEvent } from "./types";
import { backoff, byteLen, cleanProps, clip, retryAfter, uuid } from "./util";

/**
 * The anonymous_id of opted-out events. The contract requires an
 * anonymous_id or a user_id on every event, so an opted-out event carries
 * this constant, the same for every user: it identifies no one, and the
 * collector removes it with the other identifiers before publishing.
 */
export const OPTED_OUT_ID = "opted-out";

/**
 * The most bytes sent in one request. Browsers allow 64 KiB of keepalive
 * fetch and sendBeacon bodies in flight per page; larger batches are split.
 */
export const MAX_BODY = 60000;

/** Most events in one request (the collector's default max_batch_events is 500). */
const MAX_EVENTS = 500;

/** Most client_error events sent by one page, so an error loop cannot flood the queue. */
const MAX_ERRORS = 25;

/** localStorage keys. */
export const KEYS = {
  queue: "tlm:q",
  anonymousId: "tlm:aid",
  session: "tlm:sid",
  optOut: "tlm:optout",
  dropped: "tlm:drop",
  /** "<session id>.<last seq>": the session's event counter. */
  seq: "tlm:seq",
  /** "<session id>.<first seq>": what the session last handed over at unload. */
  unload: "tlm:unl",
};

/** Storage that never throws on reads; memory when the browser has none. */
function storage(g: Env): StorageLike {
  let s: StorageLike | undefined;
  try {
    s = g.localStorage;
    s!.getItem(KEYS.optOut);
  } catch (_) {
    s = undefined;
  }
  if (s) return s;
  const m: Record<string, string> = {};
  return {
    getItem: (k) => (k in m ? m[k] : null),
    setItem: (k, v) => void (m[k] = v),
    removeItem: (k) => void delete m[k],
  };
}

/**
 * createClient makes a telemetry client on the globals g (globalThis in a
 * browser; tests pass a fake). It restores the offline queue from
 * localStorage, adds its listeners (pagehide, visibilitychange, online,
 * and unless disabled error, unhandledrejection and history navigation),
 * sends page_view unless disabled, and starts sending.
 */
export function createClient(opts: Options, g: Env = globalThis as unknown as Env): Client {
  const o = {
    batchSize: 20,
    flushInterval: 5000,
    maxQueue: 500,
    retryBase: 1000,
    retryMax: 60000,
    sessionTimeout: 30 * 60000,
    ...opts,
  };
  const base = String(o.endpoint).replace(/\/+$/, "");
  const nav = g.navigator || {};
  const doc = g.document;
  const ls = storage(g);
  const now = (): number => (g.now ? g.now() : Date.now());
  const rand = (): number => (g.random ? g.random() : Math.random());
  const get = (k: string): string | null => {
    try {
      return ls.getItem(k);
    } catch (_) {
      return null;
    }
  };
  const set = (k: string, v: string): void => {
    try {
      ls.setItem(k, v);
    } catch (_) {
      // Quota or disabled storage: the value lives for this page only.
    }
  };
  const del = (k: string): void => {
    try {
      ls.removeItem(k);
    } catch (_) {
      // Nothing to remove.
    }
  };

  let queue: WireEvent[] = [];
  try {
    const q = JSON.parse(get(KEYS.queue) || "[]");
    if (Array.isArray(q)) queue = q.filter((e) => e && typeof e.event_id == "string");
  } catch (_) {
    // A corrupt queue is dropped.
  }
  let dropped = +(get(KEYS.dropped) || 0) || 0;
  let sent = 0;
  let rejected = 0;
  let failures = 0;
  let retryAt = 0;
  let inflight: Record<string, 1> | null = null;
  let timer: unknown = null;
  let userId = o.userId;
  let errors = 0;
  let lastUrl: string | undefined;
  // After pagehide the page sends nothing more (unless it comes back from
  // the back/forward cache): what is left is the next page's to send.
  let gone = false;
  const restored = queue.length;

  const busy = (e: WireEvent): boolean => !!inflight && e.event_id in inflight;

  /**
   * Writes the queue; when storage is full, keeps the newest part that fits.
   * At unload, events handed to a last keepalive fetch are left out: the
   * page cannot learn their fate, and the next page must not send them again.
   */
  function persist(handedOff?: boolean): void {
    let q = handedOff ? queue.filter((e) => !busy(e)) : queue;
    for (;;) {
      try {
        ls.setItem(KEYS.queue, JSON.stringify(q));
        return;
      } catch (_) {
        if (!q.length) return;
        q = q.slice(Math.ceil(q.length / 2));
      }
    }
  }

  function optedOut(): boolean {
    return (
      o.consent === false ||
      get(KEYS.optOut) == "1" ||
      (o.respectDNT !== false && nav.doNotTrack == "1") ||
      (o.respectGPC !== false && nav.globalPrivacyControl === true)
    );
  }

  function anonymousId(): string {
    let a = get(KEYS.anonymousId);
    if (!a) set(KEYS.anonymousId, (a = uuid(g, rand)));
    return a;
  }

  /** The session id, and whether it was just started (after sessionTimeout of inactivity). */
  function session(t: number): [string, boolean] {
    const [id, last] = (get(KEYS.session) || "").split(".");
    const fresh = !id || !(t - +last < o.sessionTimeout);
    const sid = fresh ? uuid(g, rand) : id;
    set(KEYS.session, sid + "." + t);
    return [sid, fresh];
  }

  /** The next seq of session sid (1 for a fresh one). */
  function nextSeq(sid: string, fresh: boolean): number {
    const [id, n] = (get(KEYS.seq) || "").split(".");
    const s = !fresh && id == sid ? (+n || 0) + 1 : 1;
    set(KEYS.seq, sid + "." + s);
    return s;
  }

  /**
   * Remembers the first seq of the newest session among events handed to
   * the browser at unload: the events made after carry it (unload_seq), so
   * the audit can tell the numbers lost at unload from others.
   */
  function handedAtUnload(batch: WireEvent[]): void {
    let sid: string | undefined;
    let first = 0;
    for (const e of batch) {
      if (!e.seq || !e.session_id) continue;
      if (e.session_id != sid) [sid, first] = [e.session_id, e.seq];
      else first = Math.min(first, e.seq);
    }
    if (sid) set(KEYS.unload, sid + "." + first);
  }

  function context(): WireEvent["context"] {
    const c: WireEvent["context"] = {};
    const href = g.location && g.location.href;
    const sc = g.screen;
    if (href) c.page_url = clip(href, 2048);
    if (doc && doc.referrer) c.referrer = clip(doc.referrer, 2048);
    if (nav.language) c.locale = clip(nav.language, 256);
    if (sc && sc.width! >= 1 && sc.height! >= 1) {
      c.screen = { width: Math.min(16384, sc.width! | 0), height: Math.min(16384, sc.height! | 0) };
    }
    if (o.appVersion) c.app_version = clip(o.appVersion, 256);
    return c;
  }

  /** The events of the next request: not in flight, at most max of them and MAX_BODY bytes. */
  function take(max: number, from: WireEvent[] = queue): WireEvent[] {
    const out: WireEvent[] = [];
    let size = 12;
    for (const e of from) {
      if (busy(e)) continue;
      size += byteLen(JSON.stringify(e)) + 48;
      if (out.length >= max || (out.length && size > MAX_BODY)) break;
      out.push(e);
    }
    return out;
  }

  /** The body of a request; sent_at is set at every attempt, event_id never changes. */
  function body(batch: WireEvent[]): string {
    const at = new Date(now()).toISOString();
    for (const e of batch) e.sent_at = at;
    return JSON.stringify({ events: batch });
  }

  function remove(batch: WireEvent[]): void {
    const ids: Record<string, 1> = {};
    for (const e of batch) ids[e.event_id] = 1;
    queue = queue.filter((e) => !(e.event_id in ids));
    persist();
  }

  function pending(): number {
    return queue.filter((e) => !busy(e)).length;
  }

  function later(ms: number): void {
    if (timer) g.clearTimeout(timer);
    timer = g.setTimeout(() => {
      timer = null;
      void send();
    }, ms);
  }

  /** Sends the next batch with fetch to /v1/events; retries on network errors, 408, 429 and 5xx. */
  function send(): Promise<void> {
    if (timer) g.clearTimeout(timer);
    timer = null;
    if (gone || inflight || !queue.length || !g.fetch || nav.onLine === false) return Promise.resolve();
    const wait = retryAt - now();
    if (wait > 0) {
      later(wait);
      return Promise.resolve();
    }
    const batch = take(Math.min(o.batchSize, MAX_EVENTS));
    if (!batch.length) return Promise.resolve();
    const b = body(batch);
    const fl: Record<string, 1> = (inflight = {});
    for (const e of batch) fl[e.event_id] = 1;
    const fail = (raMs: number): void => {
      inflight = null;
      failures++;
      const d = backoff(failures, o.retryBase, o.retryMax, rand, raMs);
      retryAt = now() + d;
      later(d);
    };
    const done = (refused: number): void => {
      inflight = null;
      failures = 0;
      retryAt = 0;
      rejected += refused;
      sent += batch.length - refused;
      remove(batch);
      const n = pending();
      if (n >= o.batchSize) void send();
      else if (n) later(o.flushInterval);
    };
    return g
      .fetch(base + "/v1/events", {
        method: "POST",
        body: b,
        keepalive: byteLen(b) <= MAX_BODY,
        credentials: "omit",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + o.writeKey },
      })
      .then(
        (res) => {
          const st = res.status;
          if (st == 408 || st == 429 || st >= 500) return fail(retryAfter(res.headers.get("Retry-After"), now()));
          if (st != 207) return done(st < 300 ? 0 : batch.length);
          // Partial: the rejected events are invalid and would be refused again.
          return res.json().then(
            (r) => done(Math.min(batch.length, +r.rejected || 0)),
            () => done(0),
          );
        },
        () => fail(0),
      );
  }

  /**
   * On pagehide or when the page is hidden: hands every waiting event to
   * sendBeacon (text/plain, write key in the URL). Events the browser
   * accepted leave the queue. Without sendBeacon, or when it refuses, a
   * keepalive fetch is tried; its events stay in localStorage until it is
   * answered, for the next page. Offline, nothing is sent: the queue waits
   * in localStorage.
   */
  function unload(): void {
    if (nav.onLine === false) return;
    let rest = queue.filter((e) => !busy(e));
    const handed: WireEvent[] = queue.filter(busy);
    try {
      handOver(rest, handed);
    } finally {
      handedAtUnload(handed);
    }
  }

  /** Hands rest to sendBeacon, or one last keepalive fetch; handed collects what left. */
  function handOver(rest: WireEvent[], handed: WireEvent[]): void {
    while (rest.length) {
      const batch = take(MAX_EVENTS, rest);
      rest = rest.slice(batch.length);
      let ok = false;
      try {
        ok = !!nav.sendBeacon && nav.sendBeacon(base + "/v1/beacon?writeKey=" + encodeURIComponent(o.writeKey), body(batch));
      } catch (_) {
        // A refused beacon keeps its events queued.
      }
      if (!ok) {
        // No beacon: one last keepalive fetch, which outlives the page.
        retryAt = 0;
        void send();
        persist(true);
        handed.push(...queue.filter(busy));
        return;
      }
      handed.push(...batch);
      sent += batch.length;
      remove(batch);
    }
  }

  function enqueue(e: WireEvent): void {
    queue.push(e);
    const over = queue.length - o.maxQueue;
    if (over > 0) {
      queue.splice(0, over);
      dropped += over;
      set(KEYS.dropped, "" + dropped);
    }
    persist();
    if (pending() >= o.batchSize) void send();
    else if (!timer) later(o.flushInterval);
  }

  function track(type: EventType, props?: Properties): string {
    try {
      const t = now();
      const out = optedOut();
      const e: WireEvent = {
        event_id: uuid(g, rand),
        type,
        occurred_at: new Date(t).toISOString(),
        plan: o.plan,
        consent: { analytics: !out },
        context: context(),
        properties: cleanProps(props, out),
        anonymous_id: OPTED_OUT_ID,
      };
      if (!out) {
        e.anonymous_id = anonymousId();
        if (userId) e.user_id = clip(userId, 128);
        const [sid, fresh] = session(t);
        e.session_id = sid;
        const [uid, u] = (get(KEYS.unload) || "").split(".");
        if (!fresh && uid == sid && +u > 0) e.context.unload_seq = +u;
        if (fresh && type != "session_start") {
          enqueue({ ...e, event_id: uuid(g, rand), type: "session_start", properties: {}, seq: nextSeq(sid, true) });
          e.seq = nextSeq(sid, false);
        } else e.seq = nextSeq(sid, fresh);
      }
      if (o.under13) e.under_13 = true;
      enqueue(e);
      return e.event_id;
    } catch (_) {
      // Telemetry never breaks the page.
      return "";
    }
  }

  function page(): string {
    lastUrl = g.location && g.location.href;
    return track("page_view");
  }

  function generationRequested(p: Properties): Generation {
    const gid = clip(p.generation_id || "gen_" + uuid(g, rand).replace(/-/g, ""), 128);
    const t0 = now();
    const keep: Properties = {
      quality: p.quality,
      resolution: p.resolution,
      aspect_ratio: p.aspect_ratio,
      duration_s: p.duration_s,
      width: p.width,
      height: p.height,
      model: p.model,
      generation_id: gid,
    };
    const latency = (): number => Math.min(3600000, Math.max(1, Math.round(now() - t0)));
    return {
      generation_id: gid,
      event_id: track("generation_requested", { ...p, generation_id: gid }),
      completed: (q) => track("generation_completed", { ...keep, latency_ms: latency(), ...q }),
      failed: (code, message, q) =>
        track("generation_failed", { ...keep, latency_ms: latency(), error_code: code, error_message: message, ...q }),
      downloaded: (format, q) => track("video_downloaded", { ...keep, ...q, format }),
    };
  }

  function clientError(code: string, msg: unknown, stack: unknown): void {
    if (++errors > MAX_ERRORS) return;
    track("client_error", {
      error_code: code,
      error_message: String(msg || "unknown error"),
      error_stack: typeof stack == "string" ? stack : undefined,
    });
  }

  const on = (t: string, f: (e: any) => void): void => g.addEventListener && g.addEventListener(t, f);
  on("pagehide", () => {
    unload();
    gone = true;
  });
  on("pageshow", () => {
    if (gone) {
      gone = false;
      persist();
      void send();
    }
  });
  on("online", () => {
    failures = 0;
    retryAt = 0;
    void send();
  });
  if (doc && doc.addEventListener) {
    doc.addEventListener("visibilitychange", () => doc.visibilityState == "hidden" && unload());
  }
  if (o.captureErrors !== false) {
    on("error", (e) => e && e.message && clientError("uncaught_error", e.message, e.error && e.error.stack));
    on("unhandledrejection", (e) => {
      const r = e && e.reason;
      clientError("unhandled_rejection", (r && r.message) || r, r && r.stack);
    });
  }
  if (o.autoPageView !== false) {
    const nav2 = (): void => {
      if (g.location && g.location.href != lastUrl) page();
    };
    const h = g.history;
    if (h && h.pushState) {
      const push = h.pushState;
      h.pushState = function (this: unknown, ...a: unknown[]) {
        push.apply(this, a);
        nav2();
      };
    }
    on("popstate", nav2);
    page();
  }
  // Events left by an earlier page (offline, closed) go out right away.
  if (restored) later(0);

  return {
    identify(id: string): void {
      userId = id;
      if (!optedOut()) track("identify");
    },
    track,
    page,
    generationRequested,
    optOut(): void {
      set(KEYS.optOut, "1");
      del(KEYS.anonymousId);
      del(KEYS.session);
      del(KEYS.seq);
      del(KEYS.unload);
      // What has not left yet leaves without identifiers; an identify event
      // without its user_id is invalid, so those are dropped.
      queue = queue.filter((e) => busy(e) || e.type != "identify");
      for (const e of queue) {
        if (busy(e)) continue;
        e.anonymous_id = OPTED_OUT_ID;
        delete e.user_id;
        delete e.session_id;
        delete e.seq;
        delete e.context.unload_seq;
        if (e.properties) delete e.properties.prompt;
        e.consent.analytics = false;
      }
      persist();
    },
    optIn(): void {
      del(KEYS.optOut);
    },
    isOptedOut: optedOut,
    reset(): void {
      userId = undefined;
      del(KEYS.anonymousId);
      del(KEYS.session);
      del(KEYS.seq);
      del(KEYS.unload);
    },
    flush: send,
    stats(): Stats {
      return {
        queued: queue.length,
        inflight: inflight ? Object.keys(inflight).length : 0,
        sent,
        rejected,
        dropped,
        failures,
      };
    },
  };
}
