// Client-side routes on the History API (the server answers every non-API path with
// index.html).
import { signalish } from './signal';

export const path = signalish(location.pathname + location.search);

export function navigate(to: string, replace = false) {
  if (to === path.value) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  path.set(to);
  window.scrollTo(0, 0);
}
window.addEventListener('popstate', () => path.set(location.pathname + location.search));

/** `/stacks/:name` against `/stacks/web` → `{name: 'web'}`. */
export function match(pattern: string, p: string): Record<string, string> | null {
  const a = pattern.split('/');
  const b = p.split('?')[0].split('/');
  if (a.length !== b.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) out[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return out;
}

export function query(p: string): URLSearchParams {
  return new URLSearchParams(p.split('?')[1] ?? '');
}

/** A link that navigates without reloading. */
export function onLink(e: MouseEvent) {
  const a = (e.currentTarget as HTMLAnchorElement);
  if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href')!);
}
