// The real supabase-js client against Torale's gateway: sign up, sign in, get the user,
// refresh, call the API with the access token, sign out. Prints one JSON object.
import { createClient } from "@supabase/supabase-js";
import ws from "ws"; // Node 20 has no native WebSocket for the realtime client

const url = process.env.SUPABASE_URL;
const email = process.env.TEST_EMAIL;
const password = process.env.TEST_PASSWORD;
const out = {};
const supabase = createClient(url, "local-anon-key", {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: { transport: ws },
});

const signUp = await supabase.auth.signUp({ email, password });
out.signUpError = signUp.error?.message ?? null;
out.signUpUser = signUp.data.user?.email ?? null;

const dup = await supabase.auth.signUp({ email, password });
out.duplicateError = dup.error?.message ?? null;

const bad = await supabase.auth.signInWithPassword({ email, password: "wrong-password" });
out.badPasswordError = bad.error?.message ?? null;

const signIn = await supabase.auth.signInWithPassword({ email, password });
out.signInError = signIn.error?.message ?? null;
const firstRefresh = signIn.data.session?.refresh_token;

const user = await supabase.auth.getUser();
out.getUserEmail = user.data.user?.email ?? null;
out.getUserError = user.error?.message ?? null;

const refreshed = await supabase.auth.refreshSession();
out.refreshError = refreshed.error?.message ?? null;
out.refreshRotated = !!refreshed.data.session && refreshed.data.session.refresh_token !== firstRefresh;

const token = refreshed.data.session?.access_token;
const api = await fetch(`${url}/api/v1/queries`, {
  method: "POST",
  headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  body: JSON.stringify({ raw_query: "Tell me when supabase-js works", sources: [process.env.PAGE_URL] }),
});
out.apiStatus = api.status;
const list = await fetch(`${url}/api/v1/queries`, { headers: { Authorization: `Bearer ${token}` } });
out.apiListed = (await list.json()).items.map((q) => q.raw_query);

const signOut = await supabase.auth.signOut();
out.signOutError = signOut.error?.message ?? null;

const reuse = await fetch(`${url}/auth/v1/token?grant_type=refresh_token`, {
  method: "POST",
  headers: { "Content-Type": "application/json", apikey: "local-anon-key" },
  body: JSON.stringify({ refresh_token: refreshed.data.session?.refresh_token }),
});
out.refreshAfterSignOutStatus = reuse.status;

console.log(JSON.stringify(out));
