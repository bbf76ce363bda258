"use client";

import { useMemo } from "react";
import { useApi } from "@/components/AuthProvider";
import { ChannelSettings } from "@/components/ChannelSettings";
import { DeliveryTable } from "@/components/DeliveryTable";
import { defaultPreferences, PreferencesForm } from "@/components/PreferencesForm";
import { EmptyState, ErrorNote, Spinner } from "@/components/ui";
import { ApiError } from "@/lib/api";
import { usePaginated, useResource } from "@/lib/hooks";
import type { Delivery, NotificationChannel, NotificationPreferences } from "@/lib/types";

export default function SettingsPage() {
  const api = useApi();
  const channels = usePaginated<NotificationChannel>("/notification-channels", {}, 50);
  const prefs = useResource(async (a, signal) => {
    try {
      return { ...defaultPreferences(), ...(await a.get<NotificationPreferences>("/notification-preferences", undefined, signal)) };
    } catch (err) {
      // No preferences stored yet: start from the defaults.
      if (err instanceof ApiError && err.status === 404) return defaultPreferences();
      throw err;
    }
  }, "prefs");
  const deliveries = usePaginated<Delivery>("/deliveries", {}, 25);
  const channelMap = useMemo(() => new Map(channels.items.map((c) => [c.id, c])), [channels.items]);

  return (
    <div className="page">
      <title>Settings · Torale</title>
      <div className="page-head">
        <div>
          <h1>Notification settings</h1>
          <p className="muted">Choose where alerts go, which ones, and when.</p>
        </div>
      </div>
      <div className="settings-grid">
        <ChannelSettings api={api} channels={channels} />

        <section className="panel" aria-labelledby="prefs-title" data-testid="preferences-section">
          <h2 id="prefs-title">Preferences</h2>
          {prefs.loading ? (
            <Spinner label="Loading preferences…" />
          ) : prefs.error ? (
            <ErrorNote error={prefs.error} onRetry={prefs.reload} testId="list-error" />
          ) : prefs.data ? (
            <PreferencesForm api={api} initial={prefs.data} />
          ) : null}
        </section>

        <section className="panel settings-wide" aria-labelledby="deliveries-title" data-testid="deliveries-section">
          <div className="section-head">
            <h2 id="deliveries-title">Recent deliveries</h2>
            <button type="button" className="btn btn-ghost btn-sm" onClick={deliveries.reload} disabled={deliveries.loading}>
              Refresh
            </button>
          </div>
          {deliveries.loading ? (
            <Spinner label="Loading deliveries…" />
          ) : deliveries.error ? (
            <ErrorNote error={deliveries.error} onRetry={deliveries.reload} testId="list-error" />
          ) : deliveries.items.length === 0 ? (
            <EmptyState title="No deliveries yet" testId="deliveries-empty">
              Every attempt to notify a channel will be listed here, with the receiver&apos;s answer.
            </EmptyState>
          ) : (
            <>
              <DeliveryTable deliveries={deliveries.items} channels={channelMap} />
              {deliveries.nextCursor && (
                <div className="load-more">
                  <button type="button" className="btn" onClick={deliveries.loadMore} disabled={deliveries.loadingMore} data-testid="load-more">
                    {deliveries.loadingMore ? "Loading…" : "Load more"}
                  </button>
                  <ErrorNote error={deliveries.loadMoreError} testId="list-error" />
                </div>
              )}
            </>
          )}
        </section>
      </div>
    </div>
  );
}
