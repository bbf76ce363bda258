import type { SupabaseClient } from "@supabase/supabase-js";

/** An error from the gateway (or from reaching it), ready to be put into words. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, details: unknown = null, retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

export type QueryParams = Record<string, string | number | boolean | null | undefined>;

export interface Api {
  get<T>(path: string, params?: QueryParams, signal?: AbortSignal): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
  put<T>(path: string, body?: unknown): Promise<T>;
  patch<T>(path: string, body?: unknown): Promise<T>;
  del<T = void>(path: string): Promise<T>;
}

export function withParams(path: string, params?: QueryParams): string {
  if (!params) return path;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Seconds to wait from a Retry-After header (seconds or HTTP date), or from error details. */
export function parseRetryAfter(header: string | null, details?: unknown): number | null {
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }
  if (details && typeof details === "object" && "retry_after" in details) {
    const value = Number((details as { retry_after: unknown }).retry_after);
    if (Number.isFinite(value)) return Math.max(0, Math.ceil(value));
  }
  return null;
}

async function errorFromResponse(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = "";
  let details: unknown = null;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; details?: unknown }; detail?: unknown };
    if (body?.error) {
      code = body.error.code || code;
      message = body.error.message || "";
      details = body.error.details ?? null;
    } else if (body?.detail !== undefined) {
      // FastAPI's default shape, in case an error escapes the gateway's handler.
      details = body.detail;
      if (typeof body.detail === "string") message = body.detail;
    }
  } catch {
    // Not JSON: fall back to the status text below.
  }
  const retryAfter = parseRetryAfter(res.headers.get("Retry-After"), details);
  return new ApiError(res.status, code, message || defaultMessage(res.status), details, retryAfter);
}

function defaultMessage(status: number): string {
  if (status === 400) return "The request was not accepted.";
  if (status === 401) return "Your session has expired. Please sign in again.";
  if (status === 403) return "You don't have access to this.";
  if (status === 404) return "Not found — it may have been deleted.";
  if (status === 409) return "That conflicts with something that already exists.";
  if (status === 422) return "Some of what you entered isn't valid.";
  if (status === 429) return "Too many requests.";
  if (status >= 500) return "The Torale server had a problem. Try again in a moment.";
  return `The request failed (HTTP ${status}).`;
}

/** One sentence for the user, whatever went wrong. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 429) {
      const wait = err.retryAfter ?? null;
      return wait !== null
        ? `You're going a bit fast — slow down, try again in ${wait} s.`
        : "You're going a bit fast — slow down and try again in a moment.";
    }
    if (err.status === 0) return err.message;
    if (err.status >= 500 && !err.message) return defaultMessage(err.status);
    return err.message;
  }
  if (err instanceof Error && err.message) return err.message;
  return "Something went wrong. Try again.";
}

/**
 * Map a 422's details onto form fields. Accepts the shapes a gateway is likely to send:
 * {"field": "raw_query"}, {"fields": {"raw_query": "msg"}}, Pydantic's
 * [{"loc": ["body", "raw_query"], "msg": "..."}], or {"errors": [...same...]}.
 */
export function fieldErrors(err: unknown, known: string[]): { fields: Record<string, string>; rest: string | null } {
  const fields: Record<string, string> = {};
  if (!(err instanceof ApiError)) return { fields, rest: describeError(err) };
  const message = describeError(err);
  const match = (name: unknown): string | null => {
    if (typeof name !== "string" && typeof name !== "number") return null;
    // The most specific (last) known part wins: ["body", "config", "url"] → "url".
    const parts = String(name).split(/[.[\]]/).filter(Boolean).reverse();
    return parts.find((p) => known.includes(p)) ?? null;
  };
  const fromLoc = (loc: unknown): string | null => {
    if (Array.isArray(loc)) {
      for (const part of [...loc].reverse()) {
        const hit = match(part);
        if (hit) return hit;
      }
      return null;
    }
    return match(loc);
  };
  const addList = (list: unknown[]) => {
    for (const item of list) {
      if (!item || typeof item !== "object") continue;
      const entry = item as { loc?: unknown; field?: unknown; msg?: unknown; message?: unknown };
      const field = fromLoc(entry.loc ?? entry.field);
      const text = typeof entry.msg === "string" ? entry.msg : typeof entry.message === "string" ? entry.message : message;
      if (field && !fields[field]) fields[field] = text;
    }
  };
  const details = err.details;
  if (Array.isArray(details)) addList(details);
  else if (details && typeof details === "object") {
    const d = details as { field?: unknown; fields?: unknown; errors?: unknown; loc?: unknown };
    const single = fromLoc(d.field ?? d.loc);
    if (single) fields[single] = message;
    if (d.fields && typeof d.fields === "object") {
      if (Array.isArray(d.fields)) {
        for (const f of d.fields) {
          const hit = match(f);
          if (hit && !fields[hit]) fields[hit] = message;
        }
      } else {
        for (const [key, value] of Object.entries(d.fields as Record<string, unknown>)) {
          const hit = match(key);
          if (hit) fields[hit] = typeof value === "string" ? value : Array.isArray(value) ? value.join(" ") : message;
        }
      }
    }
    if (Array.isArray(d.errors)) addList(d.errors);
  }
  return { fields, rest: Object.keys(fields).length ? null : message };
}

export interface ApiOptions {
  apiUrl: string;
  supabase: SupabaseClient;
  /** Called when the gateway refuses our credentials even after a refresh. */
  onUnauthorized: () => void;
}

export function createApi({ apiUrl, supabase, onUnauthorized }: ApiOptions): Api {
  const base = `${apiUrl}/api/v1`;

  async function token(): Promise<string | null> {
    const { data } = await supabase.auth.getSession();
    return data.session?.access_token ?? null;
  }

  async function send(method: string, path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const access = await token();
    if (!access) {
      onUnauthorized();
      throw new ApiError(401, "unauthenticated", defaultMessage(401));
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${access}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await fetch(`${base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new ApiError(
        0,
        "network",
        `Can't reach the Torale API at ${apiUrl}. Check your connection; if it persists, the server may be down.`,
      );
    }
  }

  async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let res = await send(method, path, body, signal);
    if (res.status === 401) {
      // The access token may have just expired: refresh once and retry.
      const { data, error } = await supabase.auth.refreshSession();
      if (!error && data.session) res = await send(method, path, body, signal);
      if (res.status === 401) {
        onUnauthorized();
        throw await errorFromResponse(res);
      }
    }
    if (!res.ok) throw await errorFromResponse(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  return {
    get: (path, params, signal) => request("GET", withParams(path, params), undefined, signal),
    post: (path, body) => request("POST", path, body ?? {}),
    put: (path, body) => request("PUT", path, body ?? {}),
    patch: (path, body) => request("PATCH", path, body ?? {}),
    del: (path) => request("DELETE", path),
  };
}

/** Lists are `{items, next_cursor}`; tolerate a bare array too. */
export function asPage<T>(body: unknown): { items: T[]; next_cursor: string | null } {
  if (Array.isArray(body)) return { items: body as T[], next_cursor: null };
  const page = (body ?? {}) as { items?: T[]; next_cursor?: string | null };
  return { items: page.items ?? [], next_cursor: page.next_cursor ?? null };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
