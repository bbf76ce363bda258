"use client";

import { useState, type FormEvent } from "react";
import { ErrorNote, FieldError } from "./ui";
import { fieldErrors, type Api } from "@/lib/api";
import type { NotificationPreferences, Severity } from "@/lib/types";

export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

export function defaultPreferences(): NotificationPreferences {
  return { min_severity: "low", mode: "immediate", digest_hour: 8, timezone: browserTimeZone(), quiet_hours: null };
}

function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function timeZones(): string[] {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
  } catch {
    return [];
  }
}

const HOURS = Array.from({ length: 24 }, (_, h) => h);
const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d$/;

export function PreferencesForm({ api, initial }: { api: Api; initial: NotificationPreferences }) {
  const [minSeverity, setMinSeverity] = useState<Severity>(initial.min_severity ?? "low");
  const [mode, setMode] = useState<"immediate" | "digest">(initial.mode ?? "immediate");
  const [digestHour, setDigestHour] = useState<number>(initial.digest_hour ?? 8);
  const [timezone, setTimezone] = useState(initial.timezone || browserTimeZone());
  const [quietOn, setQuietOn] = useState(!!initial.quiet_hours);
  const [quietStart, setQuietStart] = useState((initial.quiet_hours?.start ?? "22:00").slice(0, 5));
  const [quietEnd, setQuietEnd] = useState((initial.quiet_hours?.end ?? "07:00").slice(0, 5));
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [zones] = useState(timeZones);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setSaved(false);
    setFormError(null);
    const next: Record<string, string> = {};
    if (!isValidTimeZone(timezone.trim())) next.timezone = "Use an IANA time zone such as Europe/Paris or America/New_York.";
    if (quietOn && !TIME_RE.test(quietStart)) next.quiet_start = "Use a time like 22:00.";
    if (quietOn && !TIME_RE.test(quietEnd)) next.quiet_end = "Use a time like 07:00.";
    setErrors(next);
    if (Object.keys(next).length) return;
    const body: NotificationPreferences = {
      min_severity: minSeverity,
      mode,
      digest_hour: digestHour,
      timezone: timezone.trim(),
      quiet_hours: quietOn ? { start: quietStart, end: quietEnd } : null,
    };
    setBusy(true);
    try {
      await api.put<NotificationPreferences>("/notification-preferences", body);
      setSaved(true);
    } catch (err) {
      const { fields, rest } = fieldErrors(err, ["min_severity", "mode", "digest_hour", "timezone", "quiet_hours", "start", "end"]);
      if (fields.start) fields.quiet_start = fields.start;
      if (fields.end) fields.quiet_end = fields.end;
      if (fields.quiet_hours && !fields.quiet_start) fields.quiet_start = fields.quiet_hours;
      setErrors(fields);
      setFormError(rest);
    } finally {
      setBusy(false);
    }
  }

  const err = (f: string) => (errors[f] ? `pref-${f}-error` : undefined);

  return (
    <form className="prefs-form" onSubmit={submit} noValidate data-testid="preferences-form" onChange={() => setSaved(false)}>
      <div className="field">
        <label htmlFor="pref-min-severity">Notify me about</label>
        <select
          id="pref-min-severity"
          value={minSeverity}
          onChange={(e) => setMinSeverity(e.target.value as Severity)}
          aria-describedby={err("min_severity")}
        >
          <option value="low">All alerts (low severity and up)</option>
          <option value="medium">Medium and high severity</option>
          <option value="high">High severity only</option>
        </select>
        <FieldError id="pref-min_severity-error" message={errors.min_severity} />
      </div>

      <fieldset className="field">
        <legend>Delivery</legend>
        <div className="radio-row">
          <label className="radio">
            <input type="radio" id="mode-immediate" name="mode" value="immediate" checked={mode === "immediate"} onChange={() => setMode("immediate")} />
            Immediately
          </label>
          <label className="radio">
            <input type="radio" id="mode-digest" name="mode" value="digest" checked={mode === "digest"} onChange={() => setMode("digest")} />
            Daily digest
          </label>
        </div>
        <FieldError id="pref-mode-error" message={errors.mode} />
      </fieldset>

      <div className="field-row">
        <div className="field">
          <label htmlFor="pref-digest-hour">Digest time</label>
          <select
            id="pref-digest-hour"
            value={digestHour}
            onChange={(e) => setDigestHour(Number(e.target.value))}
            disabled={mode !== "digest"}
            aria-describedby={`pref-digest-hint${errors.digest_hour ? " pref-digest_hour-error" : ""}`}
          >
            {HOURS.map((h) => (
              <option key={h} value={h}>
                {String(h).padStart(2, "0")}:00
              </option>
            ))}
          </select>
          <p className="hint" id="pref-digest-hint">
            {mode === "digest" ? "One email a day with everything since the last one." : "Used only in digest mode."}
          </p>
          <FieldError id="pref-digest_hour-error" message={errors.digest_hour} />
        </div>
        <div className="field">
          <label htmlFor="pref-timezone">Time zone</label>
          <input
            id="pref-timezone"
            list="pref-timezones"
            value={timezone}
            onChange={(e) => setTimezone(e.target.value)}
            aria-invalid={!!errors.timezone}
            aria-describedby={err("timezone")}
            autoComplete="off"
            spellCheck={false}
          />
          <datalist id="pref-timezones">
            {zones.map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
          <FieldError id="pref-timezone-error" message={errors.timezone} />
        </div>
      </div>

      <fieldset className="field">
        <legend>Quiet hours</legend>
        <label className="checkbox">
          <input type="checkbox" id="pref-quiet-enabled" checked={quietOn} onChange={(e) => setQuietOn(e.target.checked)} />
          Hold notifications during quiet hours
        </label>
        {quietOn && (
          <div className="field-row">
            <div className="field">
              <label htmlFor="pref-quiet-start">From</label>
              <input
                id="pref-quiet-start"
                type="time"
                value={quietStart}
                onChange={(e) => setQuietStart(e.target.value)}
                aria-invalid={!!errors.quiet_start}
                aria-describedby={err("quiet_start")}
              />
              <FieldError id="pref-quiet_start-error" message={errors.quiet_start} />
            </div>
            <div className="field">
              <label htmlFor="pref-quiet-end">Until</label>
              <input
                id="pref-quiet-end"
                type="time"
                value={quietEnd}
                onChange={(e) => setQuietEnd(e.target.value)}
                aria-invalid={!!errors.quiet_end}
                aria-describedby={err("quiet_end")}
              />
              <FieldError id="pref-quiet_end-error" message={errors.quiet_end} />
            </div>
          </div>
        )}
      </fieldset>

      <ErrorNote error={formError} />
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy} data-testid="save-preferences-button">
          {busy ? "Saving…" : "Save preferences"}
        </button>
        {saved && (
          <span className="text-ok small" role="status" data-testid="preferences-saved">
            Saved.
          </span>
        )}
      </div>
    </form>
  );
}
