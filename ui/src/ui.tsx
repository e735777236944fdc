// Shared pieces: links, loading with live refresh, error messages, badges, times.
import { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';
import { onLink } from './router';
import { changes } from './state';

export function Link(props: { href: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined; 'aria-label'?: string }) {
  return (
    <a {...props} onClick={onLink}>
      {props.children}
    </a>
  );
}

export function message(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The API's error message, announced to screen readers. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p class="error" role="alert">
      {message(error)}
    </p>
  );
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads `f` now, when `deps` change, and (with `live`) whenever the environment changes. */
export function useLoad<T>(f: () => Promise<T>, deps: unknown[], live = true): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setLoading(true);
    f().then(
      (d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (mine !== seq.current) return;
        setError(e);
        setLoading(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    setData(undefined);
    run();
  }, [run]);
  useEffect(() => (live ? changes.subscribe(() => run()) : undefined), [run, live]);
  return { data, error, loading, reload: run };
}

/** Runs an action (a button's), keeping its error to show and whether it runs. */
export function useAction(): [(f: () => Promise<unknown>) => Promise<void>, unknown, boolean, (e: unknown) => void] {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return [run, error, busy, setError];
}

const GOOD = new Set(['running', 'healthy', 'up', 'ok', 'converged']);
const BAD = new Set(['failed', 'unhealthy', 'exited', 'dead', 'down', 'engine_down', 'disconnected', 'denied', 'error']);
export function Badge({ value }: { value: string | null | undefined }) {
  if (!value) return null;
  const kind = GOOD.has(value) ? 'good' : BAD.has(value) ? 'bad' : 'warn';
  return <span class={`badge ${kind}`}>{value}</span>;
}

export function when(ms: number | null | undefined): string {
  if (!ms) return '';
  return new Date(ms).toLocaleString();
}

export function ago(ms: number | null | undefined): string {
  if (!ms) return '';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function bytes(n: number | null | undefined): string {
  if (n == null) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function Page(props: { title: string; actions?: ComponentChildren; children: ComponentChildren }) {
  useEffect(() => {
    document.title = `${props.title} · Drover`;
  }, [props.title]);
  return (
    <>
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1}>
          {props.title}
        </h1>
        {props.actions && <div class="actions">{props.actions}</div>}
      </div>
      {props.children}
    </>
  );
}

/** A table in a keyboard-scrollable box; `head` names its columns (`''`: an actions column,
 * named for screen readers only; `false`: a column left out). */
export function Table({ head, children }: { head: (string | false | null | undefined)[]; children: ComponentChildren }) {
  return (
    <div class="table-wrap" tabIndex={0}>
      <table>
        <thead>
          <tr>
            {head
              .filter((h) => typeof h === 'string')
              .map((h) => (
                <th scope="col">{h === '' ? <span class="sr-only">Actions</span> : h}</th>
              ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
