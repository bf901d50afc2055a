/**
 * The browser SDK of the sora3web telemetry pipeline. The IIFE build
 * (dist/sdk.js, served by the collector at /v1/sdk.js) exposes these
 * exports as window.telemetry; the ESM build (dist/sdk.mjs) exports them.
 *
 * init() creates the page's client; the other functions forward to it.
 * Calls made before init are kept and replayed by init (generationRequested
 * then returns a handle that sends nothing).
 */
import { createClient } from "./client";
import type { Client, EventType, Generation, Options, Properties, Stats } from "./types";

export { createClient, KEYS, MAX_BODY, OPTED_OUT_ID } from "./client";
export type * from "./types";

/** The SDK's version (package.json). */
export const version: string = __VERSION__;

declare const __VERSION__: string;

let client: Client | undefined;
const early: [keyof Client, unknown[]][] = [];

/** Creates the page's client (once; later calls return the same client). */
export function init(options: Options): Client {
  if (!client) {
    client = createClient(options);
    for (const [m, a] of early.splice(0)) (client[m] as (...x: unknown[]) => unknown)(...a);
  }
  return client;
}

function call<M extends keyof Client>(m: M, a: unknown[]): any {
  if (client) return (client[m] as (...x: unknown[]) => unknown)(...a);
  early.push([m, a]);
  return "";
}

/** Sets the signed-in user's id and sends identify (unless opted out). */
export const identify = (userId: string): void => call("identify", [userId]);
/** Queues an event; returns its event_id. */
export const track = (type: EventType, properties?: Properties): string => call("track", [type, properties]);
/** Sends page_view for the current URL (automatic at init and on history navigation). */
export const page = (): string => call("page", []);
/** Persists the user's opt-out; queued and later events carry no identifiers or prompt. */
export const optOut = (): void => call("optOut", []);
/** Removes the persisted opt-out (DNT, GPC and consent: false still apply). */
export const optIn = (): void => call("optIn", []);
/** Forgets the user and the anonymous id (sign-out). */
export const reset = (): void => call("reset", []);
/** Whether events are currently sent opted out. */
export const isOptedOut = (): boolean => !!client && client.isOptedOut();
/** Sends what is queued now (respecting a pending retry delay). */
export const flush = (): Promise<void> => (client ? client.flush() : Promise.resolve());
/** The client's counters. */
export const stats = (): Stats | undefined => client && client.stats();

const none: Generation = {
  generation_id: "",
  event_id: "",
  completed: () => "",
  failed: () => "",
  downloaded: () => "",
};

/**
 * Sends generation_requested and returns the handle that sends the rest of
 * the lifecycle (completed or failed, then downloaded) with the same
 * generation_id and latency_ms measured from this call.
 */
export const generationRequested = (properties: Properties): Generation =>
  client ? client.generationRequested(properties) : none;
