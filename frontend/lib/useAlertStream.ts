"use client";

import { fetchEventSource } from "@microsoft/fetch-event-source";
import { useEffect, useRef, useState } from "react";
import { useAuth } from "@/components/AuthProvider";
import { parseRetryAfter, sleep } from "./api";
import type { Alert } from "./types";

export type StreamState = "connecting" | "live" | "reconnecting";

export interface StreamStatus {
  state: StreamState;
  /** When reconnecting: seconds until the next attempt. */
  retryIn: number | null;
  /** Why the last connection ended, in words. */
  lastError: string | null;
}

class StreamHttpError extends Error {
  constructor(readonly status: number, readonly retryAfter: number | null) {
    super(
      status === 401
        ? "Not signed in."
        : status === 429
          ? "Too many connections."
          : status === 0
            ? "The server did not answer with an event stream."
            : `The server answered HTTP ${status}.`,
    );
  }
}

class StreamClosed extends Error {
  constructor() {
    super("The server closed the stream.");
  }
}

const BASE_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;

export function backoffDelay(attempt: number): number {
  const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  // Full jitter on the upper half so many tabs don't reconnect in step.
  return Math.round(exp / 2 + Math.random() * (exp / 2));
}

/**
 * Live alerts from GET /api/v1/alerts/stream (SSE, `event: alert`), with the
 * Authorization header, reconnecting with exponential backoff. Each connection
 * takes a fresh access token, so reconnecting after a token refresh works.
 * `onReconnected` runs after a connection that follows a drop, so the caller can
 * fetch what it missed meanwhile.
 */
export function useAlertStream(onAlert: (alert: Alert) => void, onReconnected?: () => void): StreamStatus {
  const { config, supabase, expireSession } = useAuth();
  const [status, setStatus] = useState<StreamStatus>({ state: "connecting", retryIn: null, lastError: null });
  const onAlertRef = useRef(onAlert);
  const onReconnectedRef = useRef(onReconnected);
  useEffect(() => {
    onAlertRef.current = onAlert;
    onReconnectedRef.current = onReconnected;
  });

  useEffect(() => {
    if (!config || !supabase) return;
    const stop = new AbortController();
    const url = `${config.apiUrl}/api/v1/alerts/stream`;

    (async () => {
      let attempt = 0;
      let hadConnection = false;
      while (!stop.signal.aborted) {
        setStatus((s) => ({ state: hadConnection || attempt > 0 ? "reconnecting" : "connecting", retryIn: null, lastError: s.lastError }));
        const { data } = await supabase.auth.getSession();
        const token = data.session?.access_token;
        if (!token || stop.signal.aborted) return; // Signed out: the app shell redirects to sign-in.
        let retryAfter: number | null = null;
        try {
          await fetchEventSource(url, {
            signal: stop.signal,
            openWhenHidden: true,
            headers: { Authorization: `Bearer ${token}`, accept: "text/event-stream" },
            async onopen(res) {
              const type = res.headers.get("content-type") ?? "";
              if (res.ok && type.includes("text/event-stream")) {
                const wasReconnect = hadConnection || attempt > 0;
                attempt = 0;
                hadConnection = true;
                setStatus({ state: "live", retryIn: null, lastError: null });
                if (wasReconnect) onReconnectedRef.current?.();
                return;
              }
              throw new StreamHttpError(res.ok ? 0 : res.status, parseRetryAfter(res.headers.get("Retry-After")));
            },
            onmessage(ev) {
              if (!ev.data || (ev.event && ev.event !== "alert")) return;
              try {
                const alert = JSON.parse(ev.data) as Alert;
                if (alert && typeof alert === "object" && alert.id) onAlertRef.current(alert);
              } catch {
                // A malformed event is skipped; the next one may be fine.
              }
            },
            onclose() {
              throw new StreamClosed();
            },
            onerror(err) {
              // Stop the library's own retry loop: ours below takes a fresh token.
              throw err;
            },
          });
          if (stop.signal.aborted) return;
        } catch (err) {
          if (stop.signal.aborted) return;
          attempt += 1;
          let message = err instanceof Error ? err.message : "Connection lost.";
          if (err instanceof TypeError) message = "Can't reach the server.";
          if (err instanceof StreamHttpError) {
            retryAfter = err.retryAfter;
            if (err.status === 401) {
              const refreshed = await supabase.auth.refreshSession();
              if (refreshed.error || !refreshed.data.session) {
                expireSession();
                return;
              }
            }
          }
          const delay = retryAfter !== null ? retryAfter * 1000 : backoffDelay(attempt);
          const until = Date.now() + delay;
          while (!stop.signal.aborted && Date.now() < until) {
            setStatus({ state: "reconnecting", retryIn: Math.max(1, Math.ceil((until - Date.now()) / 1000)), lastError: message });
            await sleep(Math.min(1000, until - Date.now()), stop.signal);
          }
        }
      }
    })();

    return () => stop.abort();
  }, [config, supabase, expireSession]);

  return status;
}
