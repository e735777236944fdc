// Deploy a compose file, pasted or uploaded: `POST .../stacks` with `{compose, name}`. A
// validation error (`file:line:column: ...`) is shown beside the text and its line marked.
import { useRef, useState } from 'preact/hooks';
import { ApiError, envPath, post } from '../api';
import { navigate } from '../router';
import { useSignal } from '../signal';
import { env, mayChange } from '../state';
import { Page, message } from '../ui';

const LINE = 21; // px, the text area's line height (style.css .code)

/** The first `line:column` an error message names (`compose.yaml:3:7: ...`). */
export function positionOf(msg: string): { line: number; column: number } | null {
  const m = /:(\d+):(\d+)/.exec(msg);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}

export function Deploy() {
  const e = useSignal(env);
  const [name, setName] = useState('');
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [warnings, setWarnings] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [scroll, setScroll] = useState(0);
  const area = useRef<HTMLTextAreaElement>(null);
  const pos = error ? positionOf(error) : null;
  const lines = text.split('\n').length;

  const goTo = (line: number, column: number) => {
    const t = area.current!;
    const starts = text.split('\n').slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    t.focus();
    t.setSelectionRange(starts + column - 1, starts + column - 1);
    t.scrollTop = Math.max(0, (line - 4) * LINE);
  };
  const submit = async (ev: Event) => {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await post<{ stack: { name: string }; warnings: string[] }>(envPath(e, '/stacks'), {
        compose: text,
        ...(name.trim() ? { name: name.trim() } : {}),
      });
      setWarnings(res.warnings ?? []);
      navigate(`/stacks/${encodeURIComponent(res.stack.name)}`);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : message(err));
      const p = err instanceof Error ? positionOf(err.message) : null;
      if (p) setTimeout(() => goTo(p.line, p.column), 0);
    } finally {
      setBusy(false);
    }
  };
  const upload = async (ev: Event) => {
    const f = (ev.currentTarget as HTMLInputElement).files?.[0];
    if (!f) return;
    setText(await f.text());
    if (!name) setName(f.name.replace(/\.(ya?ml)$/, '').replace(/^(docker-)?compose$/, ''));
    setError(null);
  };
  if (!mayChange())
    return (
      <Page title="Deploy a stack">
        <p>Your role in this environment may not deploy.</p>
      </Page>
    );
  return (
    <Page title="Deploy a stack">
      <form onSubmit={submit} class="deploy">
        <label for="stack-name">Stack name</label>
        <input id="stack-name" value={name} onInput={(ev) => setName(ev.currentTarget.value)} placeholder="the compose file's name: when empty" pattern="[a-z0-9][a-z0-9_\-]*" />
        <label for="compose-file">Upload a compose file</label>
        <input id="compose-file" type="file" accept=".yml,.yaml,text/yaml,application/yaml" onChange={upload} />
        <label for="compose">Compose file</label>
        <div class="editor">
          <div class="gutter" aria-hidden="true" style={{ transform: `translateY(${-scroll}px)` }}>
            {Array.from({ length: lines }, (_, i) => (
              <div class={pos && pos.line === i + 1 ? 'err' : ''}>{i + 1}</div>
            ))}
          </div>
          <div class="code-wrap">
            {pos && <div class="line-mark" aria-hidden="true" style={{ top: `${(pos.line - 1) * LINE - scroll + 8}px` }} />}
            <textarea
              id="compose"
              ref={area}
              class="code"
              wrap="off"
              spellcheck={false}
              required
              rows={18}
              value={text}
              aria-invalid={!!error}
              aria-describedby={error ? 'compose-error' : undefined}
              onInput={(ev) => setText(ev.currentTarget.value)}
              onScroll={(ev) => setScroll(ev.currentTarget.scrollTop)}
            />
          </div>
        </div>
        {error && (
          <div id="compose-error" class="error" role="alert">
            {pos && (
              <button type="button" class="link" onClick={() => goTo(pos.line, pos.column)}>
                Line {pos.line}, column {pos.column}
              </button>
            )}{' '}
            <span class="msg">{error}</span>
          </div>
        )}
        {warnings.map((w) => (
          <p class="warn">{w}</p>
        ))}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Deploying…' : 'Deploy'}
        </button>
      </form>
    </Page>
  );
}
