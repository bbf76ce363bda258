export interface RuntimeConfig {
  apiUrl: string;
  supabaseUrl: string;
  supabaseAnonKey: string;
}

let pending: Promise<RuntimeConfig> | null = null;

/** Fetch /config.json once per page load (retried on the next call if it failed). */
export function loadConfig(): Promise<RuntimeConfig> {
  if (!pending) {
    pending = fetch("/config.json", { cache: "no-store" })
      .then(async (res) => {
        if (!res.ok) throw new Error(`The app's configuration could not be loaded (HTTP ${res.status}).`);
        const body = (await res.json()) as Partial<RuntimeConfig>;
        if (!body.apiUrl || !body.supabaseUrl || !body.supabaseAnonKey) {
          throw new Error("The app's configuration is incomplete.");
        }
        return body as RuntimeConfig;
      })
      .catch((err: unknown) => {
        pending = null;
        if (err instanceof TypeError) {
          throw new Error("The web app's server could not be reached. Check your connection and reload.");
        }
        throw err;
      });
  }
  return pending;
}
