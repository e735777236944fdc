// A container's logs, streamed (`.../logs?follow=true&tail=N`), with follow and search.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { envPath, stream } from '../api';
import { useSignal } from '../signal';
import { env } from '../state';
import { ErrorBox, Link, Page } from '../ui';

const MAX_LINES = 5000;

export function Logs({ name }: { name: string }) {
  const e = useSignal(env);
  const [lines, setLines] = useState<string[]>([]);
  const [follow, setFollow] = useState(true);
  const [tail, setTail] = useState(200);
  const [q, setQ] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [ended, setEnded] = useState(false);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ctl = new AbortController();
    let partial = '';
    setLines([]);
    setError(null);
    setEnded(false);
    stream(
      envPath(e, `/containers/${encodeURIComponent(name)}/logs?follow=${follow}&tail=${tail}`),
      (chunk) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        if (parts.length) setLines((old) => [...old, ...parts].slice(-MAX_LINES));
      },
      ctl.signal,
    ).then(
      () => {
        if (partial) setLines((old) => [...old, partial]);
        setEnded(true);
      },
      (err) => {
        if (!ctl.signal.aborted) setError(err);
      },
    );
    return () => ctl.abort();
  }, [e, name, follow, tail]);
  const shown = useMemo(() => {
    const needle = q.toLowerCase();
    return needle ? lines.filter((l) => l.toLowerCase().includes(needle)) : lines;
  }, [lines, q]);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown, follow]);
  return (
    <Page title={`Logs of ${name}`}>
      <div class="toolbar">
        <label>
          <input type="checkbox" checked={follow} onChange={(ev) => setFollow(ev.currentTarget.checked)} /> Follow
        </label>
        <label for="tail">Last lines</label>
        <select id="tail" value={String(tail)} onChange={(ev) => setTail(Number(ev.currentTarget.value))}>
          {[100, 200, 1000, 5000].map((n) => (
            <option value={String(n)}>{n}</option>
          ))}
        </select>
        <label for="log-search">Search</label>
        <input id="log-search" type="search" value={q} onInput={(ev) => setQ(ev.currentTarget.value)} />
        <span class="count" aria-live="polite">
          {q ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`}
          {ended ? ' · ended' : follow ? ' · following' : ''}
        </span>
      </div>
      <ErrorBox error={error} />
      <pre class="logs" ref={box} tabIndex={0} aria-label={`Log lines of ${name}`}>
        {shown.map((l) => (q ? <Highlight line={l} q={q} /> : l + '\n'))}
      </pre>
      <p>
        <Link href={`/containers/${encodeURIComponent(name)}/shell`}>Open a shell in {name}</Link>
      </p>
    </Page>
  );
}

function Highlight({ line, q }: { line: string; q: string }) {
  const i = line.toLowerCase().indexOf(q.toLowerCase());
  if (i < 0) return <>{line + '\n'}</>;
  return (
    <>
      {line.slice(0, i)}
      <mark>{line.slice(i, i + q.length)}</mark>
      {line.slice(i + q.length) + '\n'}
    </>
  );
}
