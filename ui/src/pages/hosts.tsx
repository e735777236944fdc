// The environment's hosts: state, labels, capacity and what is reserved, last seen, live
// CPU and memory; drain, undo drain and labels for members and owners.
import { useState } from 'preact/hooks';
import { HostInfo, api, enc, envPath, get, post } from '../api';
import { Chart } from '../chart';
import { useSignal } from '../signal';
import { env, mayHosts, maySeeHosts } from '../state';
import { hostCpu, hostMem, pct, useStats } from '../stats';
import { Badge, ErrorBox, Page, ago, bytes, useAction, useLoad, Table } from '../ui';

const cpus = (milli: number) => `${(milli / 1000).toFixed(milli % 1000 ? 2 : 0)}`;

function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
}

/** `key=value` lines (blank lines skipped) → labels, or the first bad line's error. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (!l) return;
    const eq = l.indexOf('=');
    if (eq <= 0) throw new Error(`line ${i + 1}: "${l}" is not key=value`);
    out[l.slice(0, eq).trim()] = l.slice(eq + 1).trim();
  });
  return out;
}

function LabelForm({ h, onDone }: { h: HostInfo; onDone: () => void }) {
  const e = useSignal(env);
  const [text, setText] = useState(labelText(h.user_labels ?? {}));
  const [run, error, busy] = useAction();
  const agent = Object.entries(h.labels).filter(([k]) => !(k in (h.user_labels ?? {})));
  const save = (ev: Event) => {
    ev.preventDefault();
    run(async () => {
      await api('PUT', envPath(e, `/hosts/${enc(h.id)}/labels`), { labels: parseLabels(text) });
      onDone();
    });
  };
  const id = `labels-${h.id}`;
  return (
    <form class="label-form" onSubmit={save} aria-label={`Labels of ${h.name}`}>
      <label for={id}>Labels of {h.name} set here (one key=value a line)</label>
      <textarea id={id} rows={4} value={text} onInput={(ev) => setText(ev.currentTarget.value)} aria-describedby={`${id}-hint`} />
      <p class="hint" id={`${id}-hint`}>
        Replaces the labels set through the API; the scheduler's constraints match them.
        {agent.length > 0 && ` The agent's own (${agent.map(([k, v]) => `${k}=${v}`).join(', ')}) stay.`}
      </p>
      <ErrorBox error={error} />
      <div class="toolbar">
        <button type="submit" class="primary" disabled={busy}>
          Save labels
        </button>
        <button type="button" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function HostRow({ h, onDone, onLabels }: { h: HostInfo; onDone: () => void; onLabels: () => void }) {
  const e = useSignal(env);
  const [run, error, busy] = useAction();
  const drain = (on: boolean) => run(() => post(envPath(e, `/hosts/${enc(h.id)}/drain`), { drain: on }).then(onDone));
  return (
    <tr>
      <th scope="row">
        {h.name}
        {h.name !== h.id && <div class="meta">{h.id}</div>}
      </th>
      <td>
        <Badge value={h.state} /> {h.draining && <Badge value="draining" />}
        {h.engine_error && <div class="why">{h.engine_error}</div>}
      </td>
      <td>{h.containers}</td>
      <td>
        {cpus(h.reserved_cpu_milli)} reserved{h.cpus != null && ` of ${h.cpus}`}
      </td>
      <td>
        {bytes(h.reserved_memory)} reserved{h.memory != null && ` of ${bytes(h.memory)}`}
      </td>
      <td>{h.engine_version ?? ''}</td>
      <td>{h.state === 'up' ? 'now' : ago(h.last_seen_ms)}</td>
      <td class="labels">
        {Object.entries(h.labels).map(([k, v]) => (
          <span class={`label ${k in (h.user_labels ?? {}) ? 'user' : ''}`}>
            {k}={v}
          </span>
        ))}
      </td>
      {mayHosts() && (
        <td class="row-actions">
          {h.draining ? (
            <button type="button" disabled={busy} onClick={() => drain(false)} aria-label={`Undo drain of ${h.name}`}>
              Undo drain
            </button>
          ) : (
            <button type="button" disabled={busy} onClick={() => drain(true)} aria-label={`Drain ${h.name}`}>
              Drain
            </button>
          )}
          <button type="button" onClick={onLabels} aria-label={`Edit labels of ${h.name}`}>
            Labels
          </button>
          <ErrorBox error={error} />
        </td>
      )}
    </tr>
  );
}

export function Hosts() {
  const e = useSignal(env);
  const hosts = useLoad(() => get<HostInfo[]>(envPath(e, '/hosts')), [e]);
  // Hosts only: a stack named '' has no containers (names are never empty).
  const stats = useStats(e, '?hosts_only=true', maySeeHosts());
  const [editing, setEditing] = useState<string | null>(null);
  const list = hosts.data ?? [];
  const edited = list.find((h) => h.id === editing);
  return (
    <Page title="Hosts">
      <ErrorBox error={hosts.error} />
      {!hosts.error && (
        <>
          <Table head={['Host', 'State', 'Containers', 'CPUs', 'Memory', 'Engine', 'Last seen', 'Labels', mayHosts() && '']}>
            {list.map((h) => (
              <HostRow key={h.id} h={h} onDone={hosts.reload} onLabels={() => setEditing(h.id)} />
            ))}
          </Table>
          {hosts.data && list.length === 0 && <p>No hosts in this environment yet: run an agent with a registration token.</p>}
          {edited && mayHosts() && (
            <LabelForm
              key={edited.id}
              h={edited}
              onDone={() => {
                setEditing(null);
                hosts.reload();
              }}
            />
          )}
          <section aria-labelledby="use-h">
            <h2 id="use-h">CPU and memory</h2>
            <p class="hint">The last hour, a sample every 10 s; refreshed every 10 s.</p>
            <ErrorBox error={stats.error} />
            {list.map((h) => {
              const samples = stats.data?.hosts[h.id] ?? [];
              const total = samples.length ? samples[samples.length - 1].mem_total : (h.memory ?? undefined);
              return (
                <section class="host-use" aria-label={`Use of ${h.name}`}>
                  <h3>{h.name}</h3>
                  <div class="charts">
                    <Chart label={`CPU of ${h.name} (all CPUs)`} points={hostCpu(samples)} format={pct} max={100} />
                    <Chart label={`Memory of ${h.name}`} points={hostMem(samples)} format={bytes} max={total} base={1024} kind="mem" />
                  </div>
                </section>
              );
            })}
          </section>
        </>
      )}
    </Page>
  );
}
