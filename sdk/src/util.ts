import type { Env, Properties } from "./types";

/** A random UUID (v4): crypto.randomUUID, else getRandomValues, else Math.random. */
export function uuid(g: Env, rand: () => number): string {
  const c = g.crypto;
  if (c && c.randomUUID) {
    try {
      return c.randomUUID();
    } catch (_) {
      // randomUUID exists only in secure contexts; fall through.
    }
  }
  let b = new Uint8Array(16);
  if (c && c.getRandomValues) b = c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = (rand() * 256) | 0;
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let h = "";
  for (let i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1);
  return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
}

/** Cuts s to at most n UTF-8 bytes, never inside a character. */
export function clip(s: string, n: number): string {
  if (s.length * 3 <= n) return s;
  let bytes = 0;
  let i = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (bytes > n) return s.slice(0, i);
    i += ch.length;
  }
  return s;
}

/** Byte limits per property (schema.DefaultLimits); the prompt is bounded in characters. */
const limits: Record<string, number> = {
  generation_id: 128,
  error_message: 2048,
  error_stack: 16384,
};

/** The prompt's bound, in characters. */
const MAX_PROMPT = 2000;

/**
 * Copies the defined properties, clipping strings to the contract's limits
 * and dropping the prompt when the user opted out.
 */
export function cleanProps(p: Properties | undefined, optedOut: boolean): Properties {
  const out: Record<string, unknown> = {};
  if (!p) return out;
  for (const k in p) {
    let v = (p as Record<string, unknown>)[k];
    if (v == null || v === "" || (k === "prompt" && optedOut)) continue;
    if (typeof v === "string") {
      v = k === "prompt" ? Array.from(v).slice(0, MAX_PROMPT).join("") : clip(v, limits[k] || 256);
    }
    out[k] = v;
  }
  return out as Properties;
}

/** The body's size in UTF-8 bytes. */
export function byteLen(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x800) n += c >= 0xd800 && c < 0xe000 ? 1 : 2;
    else if (c >= 0x80) n += 1;
  }
  return n;
}

/**
 * The delay before retry number n (1-based): base·2^(n-1) capped at max,
 * with "equal jitter" (a random half of it added to the other half), and
 * never shorter than the server's Retry-After.
 */
export function backoff(n: number, base: number, max: number, rand: () => number, retryAfterMs = 0): number {
  const d = Math.min(max, base * Math.pow(2, n - 1));
  return Math.max(retryAfterMs, Math.round(d / 2 + (rand() * d) / 2));
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds from now. */
export function retryAfter(h: string | null, now: number): number {
  if (!h) return 0;
  const s = Number(h);
  if (isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(h);
  return isNaN(t) ? 0 : Math.max(0, t - now);
}
