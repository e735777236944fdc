// Stacks, and a stack's services and containers with scale, restart and rollback, and its
// history.
import { useState } from 'preact/hooks';
import { Revision, ServiceStatus, StackDetail, StackSummary, api, enc, envPath, get, post } from '../api';
import { navigate } from '../router';
import { useSignal } from '../signal';
import { env, mayChange } from '../state';
import { Badge, ErrorBox, Link, Page, ago, bytes, useAction, useLoad, when, Table } from '../ui';
import { Chart } from '../chart';
import { containerUse, pct, sumUse, useStats } from '../stats';
import { ContainerTable } from './dashboard';

export function Stacks() {
  const e = useSignal(env);
  const stacks = useLoad(() => get<StackSummary[]>(envPath(e, '/stacks')), [e]);
  const [q, setQ] = useState('');
  const shown = (stacks.data ?? []).filter((s) => s.name.includes(q.trim()));
  return (
    <Page title="Stacks" actions={mayChange() && <Link href="/deploy" class="button primary">Deploy a stack</Link>}>
      <ErrorBox error={stacks.error} />
      <label for="stack-filter">Filter stacks</label>
      <input id="stack-filter" type="search" value={q} onInput={(ev) => setQ(ev.currentTarget.value)} />
      <Table head={['Stack', 'Status', 'Services', 'Running', 'Revision', 'From catalog', 'Updated']}>
            {shown.map((s) => (
              <tr>
                <td>
                  <Link href={`/stacks/${enc(s.name)}`}>{s.name}</Link>
                </td>
                <td>
                  <Badge value={s.status} />
                </td>
                <td>{s.services}</td>
                <td>
                  {s.running}/{s.containers}
                </td>
                <td>{s.revision}</td>
                <td>{s.catalog ? `${s.catalog.template} ${s.catalog.version}${s.catalog.newer ? ` (${s.catalog.newer} available)` : ''}` : ''}</td>
                <td>{ago(s.updated_ms)}</td>
              </tr>
            ))}
          </Table>
      {stacks.data && shown.length === 0 && <p>No stacks{q ? ' match' : ''}.</p>}
    </Page>
  );
}

function ServiceRow({ stack, s, onDone }: { stack: string; s: ServiceStatus; onDone: () => void }) {
  const e = useSignal(env);
  const [replicas, setReplicas] = useState(String(s.replicas));
  const [run, error, busy] = useAction();
  const base = envPath(e, `/stacks/${enc(stack)}/services/${enc(s.name)}`);
  const act = (what: string, body?: unknown) => run(() => post(`${base}/${what}`, body).then(onDone));
  const id = `scale-${s.name}`;
  return (
    <tr>
      <th scope="row">{s.name}</th>
      <td class="image">{s.image}</td>
      <td>
        {s.running}/{s.replicas}
      </td>
      <td>
        {s.roll ? (
          <>
            <Badge value={s.roll.phase} /> {s.roll.rollback ? 'rollback' : 'roll'} to r{s.roll.revision} {s.roll.reason ?? s.roll.cause ?? ''}
          </>
        ) : (
          ''
        )}
      </td>
      {mayChange() && (
        <td class="row-actions">
          <form
            class="inline"
            onSubmit={(ev) => {
              ev.preventDefault();
              act('scale', { replicas: Number(replicas) });
            }}
          >
            <label for={id} class="sr-only">
              Replicas of {s.name}
            </label>
            <input id={id} type="number" min="0" max="1000" value={replicas} onInput={(ev) => setReplicas(ev.currentTarget.value)} />
            <button type="submit" disabled={busy}>
              Scale
            </button>
          </form>
          <button type="button" disabled={busy} onClick={() => act('restart')} aria-label={`Restart ${s.name}`}>
            Restart
          </button>
          <button type="button" disabled={busy} onClick={() => act('rollback')} aria-label={`Roll back ${s.name}`}>
            Roll back
          </button>
          <ErrorBox error={error} />
        </td>
      )}
    </tr>
  );
}

export function StackPage({ name }: { name: string }) {
  const e = useSignal(env);
  const stack = useLoad(() => get<StackDetail>(envPath(e, `/stacks/${enc(name)}`)), [e, name]);
  const history = useLoad(() => get<Revision[]>(envPath(e, `/stacks/${enc(name)}/history`)), [e, name]);
  const [run, error, busy] = useAction();
  const [target, setTarget] = useState('');
  const reload = () => {
    stack.reload();
    history.reload();
  };
  const d = stack.data;
  const remove = () =>
    run(async () => {
      if (!confirm(`Remove stack ${name} and all its containers?`)) return;
      await api('DELETE', envPath(e, `/stacks/${enc(name)}?wait=30`));
      navigate('/stacks');
    });
  const rollback = (ev: Event) => {
    ev.preventDefault();
    run(() => post(envPath(e, `/stacks/${enc(name)}/rollback`), target ? { revision: Number(target) } : {}).then(reload));
  };
  const containers = d ? d.services.flatMap((s) => s.containers) : [];
  return (
    <Page
      title={`Stack ${name}`}
      actions={
        mayChange() && (
          <button type="button" class="danger" disabled={busy} onClick={remove}>
            Remove stack
          </button>
        )
      }
    >
      <ErrorBox error={stack.error} />
      <ErrorBox error={error} />
      {d && (
        <p class="summary">
          <Badge value={d.stack.status} /> {d.stack.running}/{d.stack.containers} containers running · revision {d.stack.revision} · updated{' '}
          {ago(d.stack.updated_ms)}
        </p>
      )}
      <section aria-labelledby="services-h">
        <h2 id="services-h">Services</h2>
        <Table head={['Service', 'Image', 'Running', 'Rolling', mayChange() && 'Actions']}>
              {(d?.services ?? []).map((s) => (
                <ServiceRow key={`${s.name}-${s.replicas}`} stack={name} s={s} onDone={reload} />
              ))}
            </Table>
      </section>
      <section aria-labelledby="containers-h">
        <h2 id="containers-h">Containers</h2>
        <ContainerTable containers={containers} />
      </section>
      <StackUse name={name} services={(d?.services ?? []).map((s) => s.name)} />
      <section aria-labelledby="history-h">
        <h2 id="history-h">History</h2>
        <ErrorBox error={history.error} />
        {mayChange() && (
          <form class="inline" onSubmit={rollback}>
            <label for="rollback-to">Roll the stack back to</label>
            <select id="rollback-to" value={target} onChange={(ev) => setTarget(ev.currentTarget.value)}>
              <option value="">the previous revision</option>
              {(history.data ?? [])
                .filter((r) => !r.current)
                .map((r) => (
                  <option value={String(r.revision)}>revision {r.revision}</option>
                ))}
            </select>
            <button type="submit" disabled={busy}>
              Roll back stack
            </button>
          </form>
        )}
        <Table head={['Revision', 'When', 'Who', 'What changed']}>
              {(history.data ?? []).map((r) => (
                <tr>
                  <td>
                    {r.revision} {r.current && <Badge value="current" />}
                  </td>
                  <td>{when(r.time_ms)}</td>
                  <td>{r.actor}</td>
                  <td>{r.summary}</td>
                </tr>
              ))}
            </Table>
        <p>
          <a href={envPath(e, `/stacks/${enc(name)}/compose`)} onClick={(ev) => exportCompose(ev, e, name)}>
            Export as compose file
          </a>
        </p>
      </section>
    </Page>
  );
}

/** CPU and memory of each service (the sum of its containers) and of each container. */
function StackUse({ name, services }: { name: string; services: string[] }) {
  const e = useSignal(env);
  const stats = useStats(e, `?stack=${enc(name)}`);
  const all = Object.entries(stats.data?.containers ?? {}).sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  const names = [...new Set([...services, ...all.map(([, c]) => c.service)])];
  return (
    <section aria-labelledby="use-h">
      <h2 id="use-h">CPU and memory</h2>
      <p class="hint">The last hour, a sample every 10 s; refreshed every 10 s. CPU in percent of one CPU.</p>
      <ErrorBox error={stats.error} />
      <div class="charts">
        {names.map((svc) => {
          const use = sumUse(all.filter(([, c]) => c.service === svc).map(([, c]) => c));
          return (
            <>
              <Chart label={`CPU of service ${svc}`} points={use.cpu} format={pct} floor={1} />
              <Chart label={`Memory of service ${svc}`} points={use.mem} format={bytes} floor={1 << 20} base={1024} kind="mem" />
            </>
          );
        })}
      </div>
      {all.length > 0 && (
        <details open={all.length <= 4}>
          <summary>Each container ({all.length})</summary>
          <div class="charts">
            {all.map(([cname, c]) => {
              const use = containerUse(c);
              return (
                <>
                  <Chart label={`CPU of ${cname}`} points={use.cpu} format={pct} floor={1} />
                  <Chart label={`Memory of ${cname}`} points={use.mem} format={bytes} floor={1 << 20} base={1024} kind="mem" />
                </>
              );
            })}
          </div>
        </details>
      )}
    </section>
  );
}

async function exportCompose(ev: MouseEvent, e: string, name: string) {
  ev.preventDefault();
  const text = await api<string>('GET', envPath(e, `/stacks/${enc(name)}/compose`));
  const url = URL.createObjectURL(new Blob([typeof text === 'string' ? text : JSON.stringify(text)], { type: 'application/yaml' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${name}.yml`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
