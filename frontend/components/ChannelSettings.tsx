"use client";

import { useState, type FormEvent } from "react";
import { channelLabel } from "./DeliveryTable";
import { ConfirmButton, EmptyState, ErrorNote, FieldError, Notice, RelativeTime, Spinner } from "./ui";
import { describeError, fieldErrors, type Api } from "@/lib/api";
import { explainDelivery } from "@/lib/format";
import type { Paginated } from "@/lib/hooks";
import type { ChannelKind, Delivery, NotificationChannel } from "@/lib/types";

const KIND_TEXT: Record<ChannelKind, { label: string; help: string }> = {
  email: { label: "Email", help: "Alerts are emailed to this address." },
  webhook: {
    label: "Webhook",
    help: "We POST a signed JSON body (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature headers).",
  },
  apprise: {
    label: "Apprise",
    help: "Any Apprise URL: Slack, Discord, Telegram, Matrix, ntfy… e.g. discord://webhook_id/webhook_token",
  },
};

export function parseHeaderLines(text: string): { headers: Record<string, string>; error: string | null } {
  const headers: Record<string, string> = {};
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim() : "";
    if (!name || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
      return { headers: {}, error: `Line ${i + 1} should look like “Header-Name: value”.` };
    }
    headers[name] = line.slice(colon + 1).trim();
  }
  return { headers, error: null };
}

function SecretReveal({ secret, onDismiss }: { secret: string; onDismiss: () => void }) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);
  return (
    <div className="secret-panel" role="alert" data-testid="webhook-secret-panel">
      <p>
        <strong>Copy your signing secret now — it will not be shown again.</strong> Use it to verify the
        <code> webhook-signature</code> header on every request.
      </p>
      <div className="secret-row">
        <label htmlFor="webhook-secret" className="visually-hidden">
          Webhook signing secret
        </label>
        <input id="webhook-secret" className="mono" readOnly value={secret} data-testid="webhook-secret" onFocus={(e) => e.currentTarget.select()} />
        <button
          type="button"
          className="btn btn-sm"
          data-testid="copy-secret-button"
          onClick={async () => {
            try {
              await navigator.clipboard.writeText(secret);
              setCopied("yes");
            } catch {
              setCopied("failed");
            }
          }}
        >
          {copied === "yes" ? "Copied" : "Copy"}
        </button>
      </div>
      <p className="small" aria-live="polite">
        {copied === "yes" ? "Copied to the clipboard." : copied === "failed" ? "Couldn't copy automatically — select the text and copy it." : ""}
      </p>
      <button type="button" className="btn btn-primary btn-sm" onClick={onDismiss}>
        I&apos;ve saved it
      </button>
    </div>
  );
}

function AddChannelForm({ api, onCreated }: { api: Api; onCreated: (c: NotificationChannel) => void }) {
  const [kind, setKind] = useState<ChannelKind>("email");
  const [address, setAddress] = useState("");
  const [url, setUrl] = useState("");
  const [headersText, setHeadersText] = useState("");
  const [appriseUrl, setAppriseUrl] = useState("");
  const [busy, setBusy] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<string | null>(null);

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault();
    setFormError(null);
    const next: Record<string, string> = {};
    let config: NotificationChannel["config"] = {};
    if (kind === "email") {
      if (!/^[^\s@]+@[^\s@]+$/.test(address.trim())) next.address = "Enter an email address like you@example.com.";
      config = { address: address.trim() };
    } else if (kind === "webhook") {
      if (!/^https?:\/\/\S+$/i.test(url.trim())) next.url = "Enter an http(s) URL that accepts POST requests.";
      const { headers, error } = parseHeaderLines(headersText);
      if (error) next.headers = error;
      config = { url: url.trim(), ...(Object.keys(headers).length ? { headers } : {}) };
    } else {
      if (!/^[a-z][a-z0-9+.-]*:\/\/\S+$/i.test(appriseUrl.trim())) next.apprise_url = "Enter an Apprise URL such as discord://id/token.";
      config = { url: appriseUrl.trim() };
    }
    setErrors(next);
    if (Object.keys(next).length) return;
    setBusy(true);
    try {
      const created = await api.post<NotificationChannel>("/notification-channels", { kind, config });
      setAddress("");
      setUrl("");
      setHeadersText("");
      setAppriseUrl("");
      onCreated(created);
    } catch (err) {
      const { fields, rest } = fieldErrors(err, ["kind", "address", "url", "headers"]);
      if (kind === "apprise" && fields.url) {
        fields.apprise_url = fields.url;
        delete fields.url;
      }
      setErrors(fields);
      setFormError(rest);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="channel-form" onSubmit={submit} noValidate data-testid="add-channel-form">
      <h3>Add a channel</h3>
      <div className="field">
        <label htmlFor="channel-kind">Kind</label>
        <select
          id="channel-kind"
          value={kind}
          onChange={(e) => {
            setKind(e.target.value as ChannelKind);
            setErrors({});
          }}
          aria-describedby="channel-kind-help"
        >
          <option value="email">Email</option>
          <option value="webhook">Webhook</option>
          <option value="apprise">Apprise (Slack, Discord, Telegram…)</option>
        </select>
        <p className="hint" id="channel-kind-help">
          {KIND_TEXT[kind].help}
        </p>
        <FieldError id="channel-kind-error" message={errors.kind} />
      </div>
      {kind === "email" && (
        <div className="field">
          <label htmlFor="channel-address">Email address</label>
          <input
            id="channel-address"
            type="email"
            autoComplete="email"
            value={address}
            onChange={(e) => setAddress(e.target.value)}
            aria-invalid={!!errors.address}
            aria-describedby={errors.address ? "channel-address-error" : undefined}
          />
          <FieldError id="channel-address-error" message={errors.address} />
        </div>
      )}
      {kind === "webhook" && (
        <>
          <div className="field">
            <label htmlFor="channel-url">Webhook URL</label>
            <input
              id="channel-url"
              type="url"
              inputMode="url"
              placeholder="https://example.com/hooks/torale"
              value={url}
              onChange={(e) => setUrl(e.target.value)}
              aria-invalid={!!errors.url}
              aria-describedby={errors.url ? "channel-url-error" : undefined}
              spellCheck={false}
              autoCapitalize="off"
            />
            <FieldError id="channel-url-error" message={errors.url} />
          </div>
          <div className="field">
            <label htmlFor="channel-headers">
              Extra headers <span className="optional">(optional)</span>
            </label>
            <textarea
              id="channel-headers"
              rows={2}
              placeholder="Authorization: Bearer abc123"
              value={headersText}
              onChange={(e) => setHeadersText(e.target.value)}
              aria-invalid={!!errors.headers}
              aria-describedby={`channel-headers-hint${errors.headers ? " channel-headers-error" : ""}`}
              spellCheck={false}
              autoCapitalize="off"
            />
            <p className="hint" id="channel-headers-hint">
              One per line, as “Name: value”.
            </p>
            <FieldError id="channel-headers-error" message={errors.headers} />
          </div>
        </>
      )}
      {kind === "apprise" && (
        <div className="field">
          <label htmlFor="channel-apprise-url">Apprise URL</label>
          <input
            id="channel-apprise-url"
            type="text"
            placeholder="discord://webhook_id/webhook_token"
            value={appriseUrl}
            onChange={(e) => setAppriseUrl(e.target.value)}
            aria-invalid={!!errors.apprise_url}
            aria-describedby={errors.apprise_url ? "channel-apprise-url-error" : undefined}
            spellCheck={false}
            autoCapitalize="off"
          />
          <FieldError id="channel-apprise-url-error" message={errors.apprise_url} />
        </div>
      )}
      <ErrorNote error={formError} />
      <button type="submit" className="btn btn-primary" disabled={busy} data-testid="add-channel-button">
        {busy ? "Adding…" : `Add ${KIND_TEXT[kind].label.toLowerCase()} channel`}
      </button>
    </form>
  );
}

function ChannelRow({ channel, api, onDeleted }: { channel: NotificationChannel; api: Api; onDeleted: (id: string) => void }) {
  const [testing, setTesting] = useState(false);
  const [testResult, setTestResult] = useState<{ ok: boolean; text: string } | null>(null);
  const [deleting, setDeleting] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const headerCount = Object.keys(channel.config?.headers ?? {}).length;

  async function test() {
    setTesting(true);
    setTestResult(null);
    try {
      const result = await api.post<Partial<Delivery> | undefined>(`/notification-channels/${channel.id}/test`);
      if (result && typeof result === "object" && typeof result.status === "string") {
        const d = { response_code: null, error: null, ...result } as Delivery;
        const failed = d.status === "failed" || d.status === "retrying";
        const pending = d.status === "pending" || d.status === "queued";
        const text = failed
          ? `Test failed: ${explainDelivery(d, channel.kind)}`
          : pending
            ? "Test queued — it will be sent in a moment; see Recent deliveries."
            : `Test sent: ${explainDelivery(d, channel.kind)}`;
        setTestResult({ ok: !failed, text });
      } else {
        setTestResult({ ok: true, text: "Test notification sent. Check that it arrived." });
      }
    } catch (err) {
      setTestResult({ ok: false, text: `Test failed: ${describeError(err)}` });
    } finally {
      setTesting(false);
    }
  }

  async function remove() {
    setDeleting(true);
    setError(null);
    try {
      await api.del(`/notification-channels/${channel.id}`);
      onDeleted(channel.id);
    } catch (err) {
      setError(err);
      setDeleting(false);
    }
  }

  return (
    <li className="channel-row" data-testid="channel-row" data-channel-id={channel.id} data-kind={channel.kind}>
      <div className="channel-main">
        <span className="badge badge-outline">{KIND_TEXT[channel.kind]?.label ?? channel.kind}</span>
        <span className="channel-target break">{channel.config?.address ?? channel.config?.url ?? channelLabel(channel)}</span>
        {headerCount > 0 && (
          <span className="muted small">
            + {headerCount} {headerCount === 1 ? "header" : "headers"}
          </span>
        )}
        {channel.enabled === false && <span className="badge status-paused">Disabled</span>}
        {channel.created_at && (
          <span className="muted small">
            added <RelativeTime iso={channel.created_at} />
          </span>
        )}
      </div>
      <div className="channel-actions">
        <button type="button" className="btn btn-sm" onClick={test} disabled={testing} data-testid="test-channel-button">
          {testing ? "Sending test…" : "Send test"}
        </button>
        <ConfirmButton
          label="Delete"
          confirmLabel="Delete channel"
          question="Stop notifying this channel?"
          onConfirm={remove}
          busy={deleting}
          testId="delete-channel-button"
          className="btn btn-danger-ghost btn-sm"
        />
      </div>
      {testResult && (
        <p className={`small ${testResult.ok ? "text-ok" : "text-danger"}`} role="status" data-testid="channel-test-result">
          {testResult.text}
        </p>
      )}
      <ErrorNote error={error} />
    </li>
  );
}

export function ChannelSettings({ api, channels }: { api: Api; channels: Paginated<NotificationChannel> }) {
  const [secret, setSecret] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);
  return (
    <section className="panel" aria-labelledby="channels-title" data-testid="channels-section">
      <h2 id="channels-title">Channels</h2>
      <p className="muted">Where Torale sends your alerts.</p>
      {secret && <SecretReveal secret={secret} onDismiss={() => setSecret(null)} />}
      {added && !secret && <Notice tone="success">{added}</Notice>}
      {channels.loading ? (
        <Spinner label="Loading channels…" />
      ) : channels.error ? (
        <ErrorNote error={channels.error} onRetry={channels.reload} testId="list-error" />
      ) : channels.items.length === 0 ? (
        <EmptyState title="No channels yet" testId="channels-empty">
          Alerts still appear in the app. Add an email, webhook or Apprise channel to be notified elsewhere.
        </EmptyState>
      ) : (
        <ul className="channel-list" data-testid="channel-list">
          {channels.items.map((c) => (
            <ChannelRow key={c.id} channel={c} api={api} onDeleted={(id) => channels.setItems((prev) => prev.filter((x) => x.id !== id))} />
          ))}
        </ul>
      )}
      {channels.nextCursor && (
        <button type="button" className="btn btn-sm" onClick={channels.loadMore} disabled={channels.loadingMore} data-testid="load-more">
          {channels.loadingMore ? "Loading…" : "Load more"}
        </button>
      )}
      <AddChannelForm
        api={api}
        onCreated={(c) => {
          const { secret: once, ...rest } = c;
          channels.setItems((prev) => [rest, ...prev.filter((x) => x.id !== c.id)]);
          setAdded(`${KIND_TEXT[c.kind]?.label ?? c.kind} channel added. Send a test to make sure it works.`);
          if (once) setSecret(once);
        }}
      />
    </section>
  );
}
