// A shell in a container: a real terminal (xterm.js, loaded on demand) over the exec
// WebSocket. Browsers cannot set `Authorization` on a WebSocket: the session token goes as
// the subprotocol `bearer.<token>` beside `drover.exec`, which the server accepts on this
// route only.
import { useEffect, useRef, useState } from 'preact/hooks';
import { envPath, token } from '../api';
import { useSignal } from '../signal';
import { env, mayChange } from '../state';
import { Link, Page } from '../ui';
import type { Session } from '../terminal';

/** Splits a command line on spaces, keeping quoted parts together. */
export function argv(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

export function Shell({ name }: { name: string }) {
  const e = useSignal(env);
  const [cmd, setCmd] = useState('/bin/sh');
  const [status, setStatus] = useState('');
  const [running, setRunning] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const session = useRef<Session | null>(null);
  const stop = () => {
    session.current?.close();
    session.current = null;
    setRunning(false);
  };
  useEffect(() => {
    const onResize = () => session.current?.fit();
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      stop();
    };
  }, []);
  const start = async (ev: Event) => {
    ev.preventDefault();
    stop();
    box.current!.textContent = '';
    setStatus('connecting…');
    setRunning(true);
    const { open } = await import('../terminal');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}${envPath(e, `/containers/${encodeURIComponent(name)}/exec`)}`;
    session.current = open(box.current!, url, token() ?? '', argv(cmd), (msg) => {
      setStatus(msg);
      setRunning(false);
    });
    setStatus('running');
  };
  if (!mayChange())
    return (
      <Page title={`Shell in ${name}`}>
        <p>Your role in this environment may not run commands in containers.</p>
      </Page>
    );
  return (
    <Page title={`Shell in ${name}`}>
      <form class="toolbar" onSubmit={start}>
        <label for="shell-cmd">Command</label>
        <input id="shell-cmd" value={cmd} onInput={(ev) => setCmd(ev.currentTarget.value)} required />
        <button type="submit" class="primary">
          {running ? 'Restart' : 'Run'}
        </button>
        {running && (
          <button type="button" onClick={stop}>
            Disconnect
          </button>
        )}
        <span class="count" role="status">
          {status}
        </span>
      </form>
      <div class="terminal" ref={box} aria-label={`Terminal in ${name}`} />
      <p>
        <Link href={`/containers/${encodeURIComponent(name)}/logs`}>Logs of {name}</Link>
      </p>
    </Page>
  );
}
