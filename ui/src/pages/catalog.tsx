// The app catalog: cards with search and categories, and a form per template's questions
// (`.../templates`, `.../templates/{catalog}/{template}`, `.../install`).
import { useState } from 'preact/hooks';
import { enc, envPath, get, post } from '../api';
import { navigate } from '../router';
import { useSignal } from '../signal';
import { env, mayChange } from '../state';
import { ErrorBox, Link, Page, useAction, useLoad } from '../ui';

interface TemplateSummary { catalog: string; name: string; display_name: string; description: string; categories: string[]; versions: string[] }
interface Question {
  variable: string; label: string; description?: string | null; kind: string; required: boolean; default?: string | null;
  options: string[]; min?: number | null; max?: number | null; pattern?: string | null; group?: string | null; show_if?: string | null; generate: boolean;
}
interface TemplateDetail { template: TemplateSummary; maintainer?: string | null; homepage?: string | null; version: string; questions: Question[]; readme?: string | null }

export function Catalog() {
  const e = useSignal(env);
  const [q, setQ] = useState('');
  const [category, setCategory] = useState('');
  const all = useLoad(() => get<TemplateSummary[]>(envPath(e, '/templates')), [e], false);
  const categories = [...new Set((all.data ?? []).flatMap((t) => t.categories))].sort();
  const needle = q.trim().toLowerCase();
  const shown = (all.data ?? []).filter(
    (t) =>
      (!category || t.categories.includes(category)) &&
      (!needle || `${t.name} ${t.display_name} ${t.description}`.toLowerCase().includes(needle)),
  );
  return (
    <Page title="Catalog">
      <div class="toolbar">
        <label for="cat-search">Search templates</label>
        <input id="cat-search" type="search" value={q} onInput={(ev) => setQ(ev.currentTarget.value)} />
        <label for="cat-category">Category</label>
        <select id="cat-category" value={category} onChange={(ev) => setCategory(ev.currentTarget.value)}>
          <option value="">all</option>
          {categories.map((c) => (
            <option value={c}>{c}</option>
          ))}
        </select>
        <span class="count" aria-live="polite">
          {shown.length} templates
        </span>
      </div>
      <ErrorBox error={all.error} />
      <ul class="cards">
        {shown.map((t) => (
          <li class="card">
            <h2>
              <Link href={`/catalog/${enc(t.catalog)}/${enc(t.name)}`}>{t.display_name || t.name}</Link>
            </h2>
            <p>{t.description}</p>
            <p class="meta">
              {t.catalog} · {t.versions[0] ?? ''} · {t.categories.join(', ')}
            </p>
          </li>
        ))}
      </ul>
    </Page>
  );
}

export function TemplatePage({ catalog, template }: { catalog: string; template: string }) {
  const e = useSignal(env);
  const [version, setVersion] = useState('');
  const detail = useLoad(
    () => get<TemplateDetail>(envPath(e, `/templates/${enc(catalog)}/${enc(template)}${version ? `?version=${enc(version)}` : ''}`)),
    [e, catalog, template, version],
    false,
  );
  const [answers, setAnswers] = useState<Record<string, string>>({});
  const [stack, setStack] = useState('');
  const [run, error, busy] = useAction();
  const [preview, setPreview] = useState<string | null>(null);
  const d = detail.data;
  const install = (dry: boolean) =>
    run(async () => {
      const given = Object.fromEntries(Object.entries(answers).filter(([, v]) => v !== ''));
      const res = await post<{ stack: string; compose: string }>(envPath(e, `/templates/${enc(catalog)}/${enc(template)}/install`), {
        ...(stack.trim() ? { stack: stack.trim() } : {}),
        ...(version ? { version } : {}),
        answers: given,
        dry_run: dry,
      });
      if (dry) setPreview(res.compose);
      else navigate(`/stacks/${enc(res.stack)}`);
    });
  return (
    <Page title={d ? d.template.display_name || d.template.name : template}>
      <ErrorBox error={detail.error} />
      {d && (
        <>
          <p>{d.template.description}</p>
          <p class="meta">
            {d.maintainer && <>Maintainer: {d.maintainer} · </>}
            {d.homepage && (
              <>
                <a href={d.homepage} rel="noreferrer noopener" target="_blank">
                  Home page
                </a>{' '}
                ·{' '}
              </>
            )}
            Catalog {catalog}
          </p>
          {d.readme && (
            <details>
              <summary>README</summary>
              <pre class="readme">{d.readme}</pre>
            </details>
          )}
          {mayChange() ? (
            <form
              class="questions"
              onSubmit={(ev) => {
                ev.preventDefault();
                install(false);
              }}
            >
              <label for="tpl-version">Version</label>
              <select id="tpl-version" value={version || d.version} onChange={(ev) => setVersion(ev.currentTarget.value)}>
                {d.template.versions.map((v) => (
                  <option value={v}>{v}</option>
                ))}
              </select>
              <label for="tpl-stack">Stack name</label>
              <input id="tpl-stack" value={stack} placeholder={d.template.name} onInput={(ev) => setStack(ev.currentTarget.value)} />
              {d.questions.map((q) => (
                <QuestionField q={q} value={answers[q.variable] ?? ''} onChange={(v) => setAnswers({ ...answers, [q.variable]: v })} />
              ))}
              <ErrorBox error={error} />
              <div class="actions">
                <button type="button" disabled={busy} onClick={() => install(true)}>
                  Preview
                </button>
                <button type="submit" class="primary" disabled={busy}>
                  Install
                </button>
              </div>
            </form>
          ) : (
            <p>Your role in this environment may not install templates.</p>
          )}
          {preview && (
            <section aria-labelledby="preview-h">
              <h2 id="preview-h">Compose file it would deploy</h2>
              <pre class="readme">{preview}</pre>
            </section>
          )}
        </>
      )}
    </Page>
  );
}

function QuestionField({ q, value, onChange }: { q: Question; value: string; onChange: (v: string) => void }) {
  const id = `q-${q.variable}`;
  const hint = [q.description, q.show_if ? `asked when ${q.show_if}` : '', q.generate ? 'generated when left empty' : '']
    .filter(Boolean)
    .join(' · ');
  const described = hint ? `${id}-hint` : undefined;
  const common = { id, 'aria-describedby': described, required: q.required && !q.default && !q.generate };
  let input;
  if (q.options.length || q.kind === 'enum') {
    input = (
      <select {...common} value={value || q.default || ''} onChange={(ev) => onChange(ev.currentTarget.value)}>
        {!q.required && <option value="">(default)</option>}
        {q.options.map((o) => (
          <option value={o}>{o}</option>
        ))}
      </select>
    );
  } else if (q.kind === 'boolean') {
    input = (
      <select {...common} value={value || q.default || 'false'} onChange={(ev) => onChange(ev.currentTarget.value)}>
        <option value="true">yes</option>
        <option value="false">no</option>
      </select>
    );
  } else if (q.kind === 'multiline') {
    input = <textarea {...common} rows={4} value={value} placeholder={q.default ?? ''} onInput={(ev) => onChange(ev.currentTarget.value)} />;
  } else {
    const type = q.kind === 'int' ? 'number' : q.kind === 'password' || q.kind === 'secret' ? 'password' : 'text';
    input = (
      <input
        {...common}
        type={type as 'text'}
        min={q.min ?? undefined}
        max={q.max ?? undefined}
        pattern={q.pattern ?? undefined}
        value={value}
        placeholder={q.default ?? ''}
        autocomplete="off"
        onInput={(ev) => onChange(ev.currentTarget.value)}
      />
    );
  }
  return (
    <div class="field">
      <label for={id}>
        {q.label || q.variable}
        {q.required ? ' (required)' : ''}
      </label>
      {input}
      {hint && (
        <small id={described} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}
