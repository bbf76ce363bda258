"use client";

import { useState, type FormEvent } from "react";
import { useApi } from "./AuthProvider";
import { ErrorNote, FieldError } from "./ui";
import { fieldErrors } from "@/lib/api";
import { INTERVAL_OPTIONS } from "@/lib/format";
import type { Query, Sensitivity } from "@/lib/types";

const FIELDS = ["raw_query", "sources", "check_interval_seconds", "sensitivity"];

export function parseUrlLines(text: string): { urls: string[]; error: string | null } {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const urls: string[] = [];
  for (const [i, line] of lines.entries()) {
    let candidate = line;
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(candidate)) candidate = `https://${candidate}`;
    try {
      const parsed = new URL(candidate);
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("scheme");
      const host = parsed.hostname;
      if (/\s/.test(line) || !host || !(host.includes(".") || host === "localhost" || host.startsWith("["))) throw new Error("host");
      urls.push(candidate);
    } catch {
      return { urls: [], error: `Line ${i + 1} isn't a web address: “${line}”. Use one http(s) URL per line.` };
    }
  }
  return { urls, error: null };
}

export function CreateMonitorForm({ onCreated }: { onCreated: (query: Query) => void }) {
  const api = useApi();
  const [rawQuery, setRawQuery] = useState("");
  const [sourcesText, setSourcesText] = useState("");
  const [interval, setIntervalValue] = useState("");
  const [sensitivity, setSensitivity] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setFormError(null);
    const nextErrors: Record<string, string> = {};
    const text = rawQuery.trim();
    if (!text) nextErrors.raw_query = "Describe what you want to know, in one sentence.";
    else if (text.length < 5) nextErrors.raw_query = "That's a bit short — say what you want to be told about.";
    const { urls, error: urlError } = parseUrlLines(sourcesText);
    if (urlError) nextErrors.sources = urlError;
    setErrors(nextErrors);
    if (Object.keys(nextErrors).length) {
      const first = Object.keys(nextErrors)[0];
      document.getElementById(first)?.focus();
      return;
    }

    const body: { raw_query: string; sources?: string[]; check_interval_seconds?: number; sensitivity?: Sensitivity } = {
      raw_query: text,
    };
    if (urls.length) body.sources = urls;
    if (interval) body.check_interval_seconds = Number(interval);
    if (sensitivity) body.sensitivity = sensitivity as Sensitivity;

    setBusy(true);
    try {
      const query = await api.post<Query>("/queries", body);
      setRawQuery("");
      setSourcesText("");
      setErrors({});
      onCreated(query);
    } catch (err) {
      const { fields, rest } = fieldErrors(err, FIELDS);
      setErrors(fields);
      setFormError(rest);
      const first = Object.keys(fields)[0];
      if (first) document.getElementById(first)?.focus();
    } finally {
      setBusy(false);
    }
  }

  const describedBy = (field: string, hint?: string) =>
    [hint, errors[field] ? `${field}-error` : null].filter(Boolean).join(" ") || undefined;

  return (
    <form className="panel create-form" onSubmit={submit} noValidate data-testid="create-monitor-form" aria-labelledby="create-title">
      <h2 id="create-title">New monitor</h2>
      <div className="field">
        <label htmlFor="raw_query">What do you want to know?</label>
        <textarea
          id="raw_query"
          name="raw_query"
          rows={2}
          placeholder="Tell me when the iPhone 17 release date is announced"
          value={rawQuery}
          onChange={(e) => setRawQuery(e.target.value)}
          aria-invalid={!!errors.raw_query}
          aria-describedby={describedBy("raw_query", "raw_query-hint")}
          maxLength={2000}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.metaKey || e.ctrlKey)) e.currentTarget.form?.requestSubmit();
          }}
        />
        <p className="hint" id="raw_query-hint">
          One sentence in plain language. Torale turns it into a condition and finds pages to watch.
        </p>
        <FieldError id="raw_query-error" message={errors.raw_query} />
      </div>
      <div className="field">
        <label htmlFor="sources">
          Pages to watch <span className="optional">(optional)</span>
        </label>
        <textarea
          id="sources"
          name="sources"
          rows={2}
          placeholder={"https://www.apple.com/newsroom/\nhttps://example.com/shop/rtx-5090"}
          value={sourcesText}
          onChange={(e) => setSourcesText(e.target.value)}
          aria-invalid={!!errors.sources}
          aria-describedby={describedBy("sources", "sources-hint")}
          spellCheck={false}
          autoCapitalize="off"
        />
        <p className="hint" id="sources-hint">
          One URL per line. Leave empty and Torale will find pages for you.
        </p>
        <FieldError id="sources-error" message={errors.sources} />
      </div>
      <div className="field-row">
        <div className="field">
          <label htmlFor="check_interval_seconds">Check</label>
          <select
            id="check_interval_seconds"
            name="check_interval_seconds"
            value={interval}
            onChange={(e) => setIntervalValue(e.target.value)}
            aria-invalid={!!errors.check_interval_seconds}
            aria-describedby={describedBy("check_interval_seconds")}
          >
            <option value="">Default schedule</option>
            {INTERVAL_OPTIONS.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
          <FieldError id="check_interval_seconds-error" message={errors.check_interval_seconds} />
        </div>
        <div className="field">
          <label htmlFor="sensitivity">Sensitivity</label>
          <select
            id="sensitivity"
            name="sensitivity"
            value={sensitivity}
            onChange={(e) => setSensitivity(e.target.value)}
            aria-invalid={!!errors.sensitivity}
            aria-describedby={describedBy("sensitivity")}
          >
            <option value="">Default</option>
            <option value="low">Low — only big, clearly relevant changes</option>
            <option value="medium">Medium</option>
            <option value="high">High — tell me about smaller changes too</option>
          </select>
          <FieldError id="sensitivity-error" message={errors.sensitivity} />
        </div>
      </div>
      <ErrorNote error={formError} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy} data-testid="create-monitor-submit">
          {busy ? "Creating…" : "Start monitoring"}
        </button>
      </div>
    </form>
  );
}
