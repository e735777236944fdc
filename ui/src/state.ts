// What the whole UI shares: who is signed in, the chosen environment, the caller's role in
// it, and a change counter that the watch stream (`GET .../watch`) bumps.
import { signalish } from './signal';
import { Environment, WhoAmI, envPath, raw } from './api';

export const me = signalish<WhoAmI | null>(null);
export const envs = signalish<Environment[]>([]);
export const env = signalish<string>(sessionStorage.getItem('drover.env') ?? 'default');
env.subscribe((e) => sessionStorage.setItem('drover.env', e));
/** Bumped when the environment's stacks, containers or hosts change. */
export const changes = signalish(0);
export const live = signalish<'live' | 'polling' | 'off'>('off');

export const ROLES = ['read-only', 'restricted', 'member', 'owner'] as const;
export function role(): string | null {
  const w = me.value;
  if (!w) return null;
  if (w.scope && w.scope !== env.value) return null;
  if (w.admin) return 'owner';
  return w.roles[env.value] ?? null;
}
const rank = (r: string | null) => (r ? ROLES.indexOf(r as (typeof ROLES)[number]) : -1);
/** May deploy, scale, restart, roll back, exec (restricted and above). */
export const mayChange = () => rank(role()) >= 1;
/** May list hosts (everyone but restricted). */
export const maySeeHosts = () => role() !== null && role() !== 'restricted';
/** May drain, label and remove hosts (member and above). */
export const mayHosts = () => rank(role()) >= 2;
/** May change members (owner). */
export const mayGovern = () => rank(role()) >= 3;

let watching: AbortController | null = null;

/** Follows the environment's watch stream; falls back to polling every 2 s when it fails. */
export function watch() {
  watching?.abort();
  const ctl = new AbortController();
  watching = ctl;
  const which = env.value;
  (async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await raw('GET', envPath(which, '/watch'), undefined, ctl.signal, 'text/event-stream');
        live.set('live');
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (/^event: change$/m.test(block)) changes.set(changes.value + 1);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        live.set('polling');
        changes.set(changes.value + 1);
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
    }
  })();
}
export function stopWatching() {
  watching?.abort();
  watching = null;
  live.set('off');
}
