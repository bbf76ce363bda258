// Runtime configuration for the browser, read from the server's environment on
// every request, so one production build works against any Torale backend.
export const dynamic = "force-dynamic";

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

export function GET(): Response {
  const apiUrl = trimSlash(process.env.TORALE_API_URL || "http://127.0.0.1:8000");
  const supabaseUrl = trimSlash(process.env.SUPABASE_URL || apiUrl);
  const supabaseAnonKey = process.env.SUPABASE_ANON_KEY || "local-anon-key";
  return Response.json(
    { apiUrl, supabaseUrl, supabaseAnonKey },
    { headers: { "Cache-Control": "no-store" } },
  );
}
