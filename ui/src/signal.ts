// A tiny observable value, and a hook that re-renders a component when it changes.
import { useEffect, useState } from 'preact/hooks';

export interface Signalish<T> {
  value: T;
  set(v: T): void;
  subscribe(f: (v: T) => void): () => void;
}

export function signalish<T>(initial: T): Signalish<T> {
  const subs = new Set<(v: T) => void>();
  const s: Signalish<T> = {
    value: initial,
    set(v: T) {
      if (v === s.value) return;
      s.value = v;
      for (const f of [...subs]) f(v);
    },
    subscribe(f) {
      subs.add(f);
      return () => subs.delete(f);
    },
  };
  return s;
}

export function useSignal<T>(s: Signalish<T>): T {
  const [, force] = useState(0);
  useEffect(() => s.subscribe(() => force((n) => n + 1)), [s]);
  return s.value;
}
