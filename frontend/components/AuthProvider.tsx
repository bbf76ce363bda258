"use client";

import { createClient, type Session, type SupabaseClient } from "@supabase/supabase-js";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { createApi, type Api } from "@/lib/api";
import { loadConfig, type RuntimeConfig } from "@/lib/config";

interface AuthState {
  config: RuntimeConfig | null;
  configError: string | null;
  supabase: SupabaseClient | null;
  session: Session | null;
  /** True until the config is loaded and the stored session (if any) is known. */
  loading: boolean;
  api: Api | null;
  signOut: () => Promise<void>;
  /** A message for the sign-in page, e.g. "your session has expired". */
  notice: string | null;
  setNotice: (message: string | null) => void;
  /** The gateway refused our credentials: forget the session and say why. */
  expireSession: () => void;
}

const NOTICE_KEY = "torale:auth-notice";

const AuthContext = createContext<AuthState | null>(null);

let clientCache: { key: string; client: SupabaseClient } | null = null;

function supabaseFor(config: RuntimeConfig): SupabaseClient {
  const key = `${config.supabaseUrl}|${config.supabaseAnonKey}`;
  if (!clientCache || clientCache.key !== key) {
    clientCache = {
      key,
      client: createClient(config.supabaseUrl, config.supabaseAnonKey, {
        auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: false },
      }),
    };
  }
  return clientCache.client;
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [config, setConfig] = useState<RuntimeConfig | null>(null);
  const [configError, setConfigError] = useState<string | null>(null);
  const [session, setSession] = useState<Session | null>(null);
  const [sessionKnown, setSessionKnown] = useState(false);
  const [notice, setNoticeState] = useState<string | null>(null);

  // The notice survives a reload (sessionStorage), so "session expired" is still said
  // when the redirect to sign-in happens on a fresh page load.
  const setNotice = useCallback((message: string | null) => {
    setNoticeState(message);
    try {
      if (message) sessionStorage.setItem(NOTICE_KEY, message);
      else sessionStorage.removeItem(NOTICE_KEY);
    } catch {
      // Storage unavailable (private mode): the in-memory notice still works.
    }
  }, []);

  useEffect(() => {
    let stored: string | null = null;
    try {
      stored = sessionStorage.getItem(NOTICE_KEY);
    } catch {
      stored = null;
    }
    if (stored) queueMicrotask(() => setNoticeState(stored));
  }, []);

  // Signed in again: the notice has served its purpose.
  useEffect(() => {
    if (session) queueMicrotask(() => setNotice(null));
  }, [session, setNotice]);

  useEffect(() => {
    let cancelled = false;
    loadConfig().then(
      (cfg) => {
        if (!cancelled) setConfig(cfg);
      },
      (err: unknown) => {
        if (!cancelled) setConfigError(err instanceof Error ? err.message : String(err));
      },
    );
    return () => {
      cancelled = true;
    };
  }, []);

  const supabase = useMemo(() => (config ? supabaseFor(config) : null), [config]);

  useEffect(() => {
    if (!supabase) return;
    let cancelled = false;
    supabase.auth.getSession().then(({ data }) => {
      if (cancelled) return;
      setSession(data.session);
      setSessionKnown(true);
    });
    const { data } = supabase.auth.onAuthStateChange((_event, next) => {
      if (cancelled) return;
      setSession(next);
      setSessionKnown(true);
    });
    return () => {
      cancelled = true;
      data.subscription.unsubscribe();
    };
  }, [supabase]);

  const expireSession = useCallback(() => {
    setNotice("Your session has expired. Please sign in again.");
    // Local sign-out only: the server already considers the token invalid.
    void supabase?.auth.signOut({ scope: "local" });
  }, [supabase, setNotice]);

  const api = useMemo(
    () => (config && supabase ? createApi({ apiUrl: config.apiUrl, supabase, onUnauthorized: expireSession }) : null),
    [config, supabase, expireSession],
  );

  const signOut = useCallback(async () => {
    if (!supabase) return;
    setNotice(null);
    const { error } = await supabase.auth.signOut();
    // If the server could not be told, still forget the session here.
    if (error) await supabase.auth.signOut({ scope: "local" });
  }, [supabase, setNotice]);

  const value = useMemo<AuthState>(
    () => ({
      config,
      configError,
      supabase,
      session,
      loading: !configError && (!config || !sessionKnown),
      api,
      signOut,
      notice,
      setNotice,
      expireSession,
    }),
    [config, configError, supabase, session, sessionKnown, api, signOut, notice, setNotice, expireSession],
  );

  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error("useAuth must be used inside <AuthProvider>");
  return ctx;
}

/** The API client; only call from pages rendered behind <AppShell>'s session gate. */
export function useApi(): Api {
  const { api } = useAuth();
  if (!api) throw new Error("The API client is not ready yet");
  return api;
}
