/** Plans of the event contract (schema.Plans). */
export type Plan = "free" | "pro";

/** Event types of the event contract (schema.Types). */
export type EventType =
  | "generation_requested"
  | "generation_completed"
  | "generation_failed"
  | "video_downloaded"
  | "page_view"
  | "session_start"
  | "settings_changed"
  | "client_error"
  | "identify";

/** Type-specific fields of an event (schema.Properties). */
export interface Properties {
  quality?: "standard" | "fast" | "pro" | "uhd";
  resolution?: "480p" | "540p" | "720p" | "1080p" | "1440p" | "2160p";
  width?: number;
  height?: number;
  aspect_ratio?: "16:9" | "9:16" | "1:1" | "4:3" | "3:4" | "21:9";
  duration_s?: number;
  prompt?: string;
  model?: string;
  generation_id?: string;
  latency_ms?: number;
  format?: "mp4" | "webm" | "mov" | "gif";
  error_code?: string;
  error_message?: string;
  error_stack?: string;
  setting?: string;
  value?: string;
}

/** An event as it is queued and sent (the envelope of schema.Event). */
export interface WireEvent {
  event_id: string;
  type: string;
  occurred_at: string;
  /** Set at every send attempt, never stored before the first one. */
  sent_at?: string;
  anonymous_id?: string;
  user_id?: string;
  session_id?: string;
  /** The event's number in its session, from 1, across the session's pages. */
  seq?: number;
  plan: Plan;
  under_13?: boolean;
  consent: { analytics: boolean };
  context: {
    page_url?: string;
    referrer?: string;
    locale?: string;
    screen?: { width: number; height: number };
    app_version?: string;
    /**
     * The first seq the session last handed to the browser at unload
     * (sendBeacon or a keepalive fetch), whose fate the page could not learn.
     */
    unload_seq?: number;
  };
  properties: Properties;
}

/** Options of init / createClient. Only endpoint, writeKey and plan are required. */
export interface Options {
  /** Collector base URL, e.g. "https://t.sora3web.com" (no path). */
  endpoint: string;
  /** The web source's write key. */
  writeKey: string;
  /** The user's plan. */
  plan: Plan;
  /** Signed-in user's id, if known at init (same as calling identify without the event). */
  userId?: string;
  /** The web client's version, sent as context.app_version. */
  appVersion?: string;
  /** Analytics consent from the site's consent manager; false sends every event opted out. Default true. */
  consent?: boolean;
  /** The user is known to be under 13 (the collector drops such events). */
  under13?: boolean;
  /** Send page_view at init and on history navigation. Default true. */
  autoPageView?: boolean;
  /** Send client_error for window error and unhandledrejection. Default true. */
  captureErrors?: boolean;
  /** Honour navigator.doNotTrack === "1" as an opt-out. Default true. */
  respectDNT?: boolean;
  /** Honour navigator.globalPrivacyControl as an opt-out. Default true. */
  respectGPC?: boolean;
  /** Send when this many events wait. Default 20. */
  batchSize?: number;
  /** Send at most this long (ms) after an event was queued. Default 5000. */
  flushInterval?: number;
  /** Most events kept in the offline queue; the oldest are dropped beyond it. Default 500. */
  maxQueue?: number;
  /** First retry delay in ms, doubled at every failure (with jitter). Default 1000. */
  retryBase?: number;
  /** Longest retry delay in ms. Default 60000. */
  retryMax?: number;
  /** Inactivity (ms) after which a new session starts. Default 30 minutes. */
  sessionTimeout?: number;
}

/** Counters of a client, for dashboards and tests. */
export interface Stats {
  /** Events waiting in the queue (including those in flight). */
  queued: number;
  /** Events of the request in flight. */
  inflight: number;
  /** Events accepted by the collector. */
  sent: number;
  /** Events refused by the collector (invalid); never retried. */
  rejected: number;
  /** Events dropped because the offline queue was full (persisted across pages). */
  dropped: number;
  /** Consecutive failed send attempts (0 when the last one succeeded). */
  failures: number;
}

/** What generationRequested returns: the rest of one generation's lifecycle. */
export interface Generation {
  /** The generation_id shared by the lifecycle's events. */
  readonly generation_id: string;
  /** The generation_requested event's id. */
  readonly event_id: string;
  /** Sends generation_completed with latency_ms measured from the request. */
  completed(props?: Properties): string;
  /** Sends generation_failed with the error and latency_ms. */
  failed(code: string, message?: string, props?: Properties): string;
  /** Sends video_downloaded in the given format. */
  downloaded(format: NonNullable<Properties["format"]>, props?: Properties): string;
}

/** A telemetry client. */
export interface Client {
  identify(userId: string): void;
  track(type: EventType, props?: Properties): string;
  page(): string;
  generationRequested(props: Properties): Generation;
  optOut(): void;
  optIn(): void;
  isOptedOut(): boolean;
  reset(): void;
  flush(): Promise<void>;
  stats(): Stats;
}

/** Minimal Storage (localStorage) used by the SDK. */
export interface StorageLike {
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

/**
 * The globals the SDK uses; globalThis in a browser. Tests pass a fake.
 * Every member is optional: the SDK degrades (no storage: memory queue; no
 * sendBeacon: keepalive fetch; no fetch: nothing is sent).
 */
export interface Env {
  localStorage?: StorageLike;
  sessionStorage?: StorageLike;
  navigator?: {
    onLine?: boolean;
    language?: string;
    doNotTrack?: string | null;
    globalPrivacyControl?: boolean;
    sendBeacon?(url: string, data?: string): boolean;
  };
  location?: { href: string };
  document?: {
    referrer?: string;
    visibilityState?: string;
    addEventListener?(type: string, fn: (e: any) => void): void;
  };
  screen?: { width?: number; height?: number };
  history?: { pushState?: (...a: any[]) => void };
  crypto?: { randomUUID?(): string; getRandomValues?<T extends Uint8Array>(a: T): T };
  fetch?(url: string, init: any): Promise<{ status: number; headers: { get(k: string): string | null }; json(): Promise<any> }>;
  addEventListener?(type: string, fn: (e: any) => void): void;
  setTimeout(fn: () => void, ms: number): any;
  clearTimeout(id: any): void;
  /** Clock in ms (Date.now when absent). */
  now?(): number;
  /** Random number in [0, 1) (Math.random when absent). */
  random?(): number;
}
