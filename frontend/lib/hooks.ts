"use client";

import { useCallback, useEffect, useRef, useState, type Dispatch, type SetStateAction } from "react";
import { useApi } from "@/components/AuthProvider";
import { asPage, type Api, type QueryParams } from "./api";

export interface Resource<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: Dispatch<SetStateAction<T | null>>;
}

/** Load one thing from the API; `key` changes (or reload()) fetch it again. */
export function useResource<T>(load: (api: Api, signal: AbortSignal) => Promise<T>, key: string): Resource<T> {
  const api = useApi();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [version, setVersion] = useState(0);
  const loadRef = useRef(load);
  useEffect(() => {
    loadRef.current = load;
  });

  useEffect(() => {
    const ctrl = new AbortController();
    (async () => {
      setLoading(true);
      setError(null);
      try {
        const result = await loadRef.current(api, ctrl.signal);
        if (!ctrl.signal.aborted) setData(result);
      } catch (err) {
        if (!ctrl.signal.aborted) setError(err);
      } finally {
        if (!ctrl.signal.aborted) setLoading(false);
      }
    })();
    return () => ctrl.abort();
  }, [api, key, version]);

  const reload = useCallback(() => setVersion((v) => v + 1), []);
  return { data, error, loading, reload, setData };
}

export interface Paginated<T> {
  items: T[];
  setItems: Dispatch<SetStateAction<T[]>>;
  nextCursor: string | null;
  loading: boolean;
  loadingMore: boolean;
  error: unknown;
  loadMoreError: unknown;
  loadMore: () => Promise<void>;
  reload: () => void;
  /** Fetch the first page again and merge new items in at the top (by id), keeping the rest. */
  refreshTop: () => Promise<void>;
}

/** A `{items, next_cursor}` list with "Load more". */
export function usePaginated<T extends { id: string }>(path: string, params: QueryParams = {}, limit = 25): Paginated<T> {
  const api = useApi();
  const [items, setItems] = useState<T[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [loadingMore, setLoadingMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [loadMoreError, setLoadMoreError] = useState<unknown>(null);
  const [version, setVersion] = useState(0);
  const paramsKey = JSON.stringify(params);

  useEffect(() => {
    const ctrl = new AbortController();
    const query = JSON.parse(paramsKey) as QueryParams;
    (async () => {
      setLoading(true);
      setError(null);
      setLoadMoreError(null);
      try {
        const page = asPage<T>(await api.get(path, { ...query, limit }, ctrl.signal));
        if (ctrl.signal.aborted) return;
        setItems(page.items);
        setNextCursor(page.next_cursor);
      } catch (err) {
        if (!ctrl.signal.aborted) setError(err);
      } finally {
        if (!ctrl.signal.aborted) setLoading(false);
      }
    })();
    return () => ctrl.abort();
  }, [api, path, paramsKey, limit, version]);

  const loadMore = useCallback(async () => {
    if (!nextCursor) return;
    setLoadingMore(true);
    setLoadMoreError(null);
    try {
      const query = JSON.parse(paramsKey) as QueryParams;
      const page = asPage<T>(await api.get(path, { ...query, limit, cursor: nextCursor }));
      setItems((prev) => {
        const seen = new Set(prev.map((i) => i.id));
        return [...prev, ...page.items.filter((i) => !seen.has(i.id))];
      });
      setNextCursor(page.next_cursor);
    } catch (err) {
      setLoadMoreError(err);
    } finally {
      setLoadingMore(false);
    }
  }, [api, path, paramsKey, limit, nextCursor]);

  const refreshTop = useCallback(async () => {
    const query = JSON.parse(paramsKey) as QueryParams;
    const page = asPage<T>(await api.get(path, { ...query, limit }));
    setItems((prev) => {
      const fresh = new Map(page.items.map((i) => [i.id, i]));
      const added = page.items.filter((i) => !prev.some((p) => p.id === i.id));
      return [...added, ...prev.map((p) => fresh.get(p.id) ?? p)];
    });
  }, [api, path, paramsKey, limit]);

  const reload = useCallback(() => setVersion((v) => v + 1), []);

  return { items, setItems, nextCursor, loading, loadingMore, error, loadMoreError, loadMore, reload, refreshTop };
}

/** Re-render every `ms` while `active` (for "checked 3 s ago" and polling loops). */
export function useInterval(callback: () => void, ms: number | null): void {
  const ref = useRef(callback);
  useEffect(() => {
    ref.current = callback;
  });
  useEffect(() => {
    if (ms === null) return;
    const timer = setInterval(() => ref.current(), ms);
    return () => clearInterval(timer);
  }, [ms]);
}
