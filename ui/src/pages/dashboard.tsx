// The dashboard: hosts, stacks, containers, and what is unhealthy, pending or failing, and why.
import { useState } from 'preact/hooks';
import { ContainerInfo, HostInfo, StackSummary, envPath, get } from '../api';
import { useSignal } from '../signal';
import { env, maySeeHosts } from '../state';
import { Badge, ErrorBox, Link, Page, ago, bytes, useLoad, Table } from '../ui';

export function problemOf(c: ContainerInfo): string | null {
  if (c.error) return c.error;
  if (c.waiting) return c.waiting;
  if (c.health === 'unhealthy') return 'unhealthy';
  if (c.state !== 'running') return c.status || c.state;
  return null;
}

/** Containers the dashboard lists before "Show all" (problems are listed above anyway). */
const FIRST_CONTAINERS = 50;

export function Dashboard() {
  const e = useSignal(env);
  const [allContainers, setAllContainers] = useState(false);
  const showHosts = maySeeHosts();
  const stacks = useLoad(() => get<StackSummary[]>(envPath(e, '/stacks')), [e]);
  const containers = useLoad(() => get<ContainerInfo[]>(envPath(e, '/containers')), [e]);
  const hosts = useLoad(() => (showHosts ? get<HostInfo[]>(envPath(e, '/hosts')) : Promise.resolve([])), [e, showHosts]);
  const cs = containers.data ?? [];
  const running = cs.filter((c) => c.state === 'running').length;
  const unhealthy = cs.filter((c) => c.health === 'unhealthy').length;
  const problems = cs.map((c) => [c, problemOf(c)] as const).filter(([, p]) => p);
  const badHosts = (hosts.data ?? []).filter((h) => h.state !== 'up' || h.draining);
  return (
    <Page title="Dashboard">
      <ErrorBox error={stacks.error || containers.error || hosts.error} />
      <section class="tiles" aria-label="Summary">
        <div class="tile">
          <span class="num">{stacks.data?.length ?? '…'}</span> stacks
        </div>
        <div class="tile">
          <span class="num">
            {running}/{cs.length}
          </span>{' '}
          containers running
        </div>
        <div class={`tile ${unhealthy ? 'bad' : ''}`}>
          <span class="num">{unhealthy}</span> unhealthy
        </div>
        {showHosts && (
          <div class={`tile ${badHosts.length ? 'bad' : ''}`}>
            <span class="num">
              {(hosts.data ?? []).filter((h) => h.state === 'up').length}/{hosts.data?.length ?? '…'}
            </span>{' '}
            hosts up
          </div>
        )}
      </section>

      <section aria-labelledby="attention">
        <h2 id="attention">Needs attention</h2>
        {problems.length === 0 && badHosts.length === 0 ? (
          <p class="ok-note">{containers.loading && !containers.data ? 'Loading…' : 'Everything runs as desired.'}</p>
        ) : (
          <ul class="problems">
            {badHosts.map((h) => (
              <li>
                Host <strong>{h.name}</strong> <Badge value={h.draining ? 'draining' : h.state} /> {h.engine_error}
                {h.last_seen_ms ? ` (last seen ${ago(h.last_seen_ms)})` : ''}
              </li>
            ))}
            {problems.map(([c, why]) => (
              <li>
                <Link href={`/stacks/${encodeURIComponent(c.stack)}`}>{c.name}</Link> <Badge value={c.health === 'unhealthy' ? 'unhealthy' : c.state} />{' '}
                <span class="why">{why}</span>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section aria-labelledby="stacks-h">
        <h2 id="stacks-h">Stacks</h2>
        <Table head={['Stack', 'Status', 'Running', 'Revision', 'Updated']}>
              {(stacks.data ?? []).map((s) => (
                <tr>
                  <td>
                    <Link href={`/stacks/${encodeURIComponent(s.name)}`}>{s.name}</Link>
                  </td>
                  <td>
                    <Badge value={s.status} />
                  </td>
                  <td>
                    {s.running}/{s.containers}
                  </td>
                  <td>{s.revision}</td>
                  <td>{ago(s.updated_ms)}</td>
                </tr>
              ))}
            </Table>
{stacks.data?.length === 0 && (
            <p>
              No stacks yet. <Link href="/deploy">Deploy one</Link>.
            </p>
          )}
      </section>

      {showHosts && (
        <section aria-labelledby="hosts-h">
          <h2 id="hosts-h">
            <Link href="/hosts">Hosts</Link>
          </h2>
          <Table head={['Host', 'State', 'Containers', 'CPUs', 'Memory', 'Engine', 'Labels']}>
                {(hosts.data ?? []).map((h) => (
                  <tr>
                    <td>{h.name}</td>
                    <td>
                      <Badge value={h.state} /> {h.draining && <Badge value="draining" />}
                    </td>
                    <td>{h.containers}</td>
                    <td>{h.cpus ?? ''}</td>
                    <td>{bytes(h.memory)}</td>
                    <td>{h.engine_version ?? h.engine_error ?? ''}</td>
                    <td class="labels">
                      {Object.entries(h.labels)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(', ')}
                    </td>
                  </tr>
                ))}
              </Table>
        </section>
      )}

      <section aria-labelledby="containers-h">
        <h2 id="containers-h">Containers</h2>
        <ContainerTable containers={allContainers ? cs : cs.slice(0, FIRST_CONTAINERS)} showStack />
        {!allContainers && cs.length > FIRST_CONTAINERS && (
          <button type="button" onClick={() => setAllContainers(true)}>
            Show all {cs.length} containers
          </button>
        )}
      </section>
    </Page>
  );
}

export function ContainerTable({ containers, showStack }: { containers: ContainerInfo[]; showStack?: boolean }) {
  return (
    <Table head={['Container', showStack && 'Stack', 'State', 'Health', 'Host', 'Status or error', '']}>
          {containers.map((c) => (
            <tr>
              <td>{c.name}</td>
              {showStack && (
                <td>
                  <Link href={`/stacks/${encodeURIComponent(c.stack)}`}>{c.stack}</Link>
                </td>
              )}
              <td>
                <Badge value={c.state} />
              </td>
              <td>
                <Badge value={c.health} />
              </td>
              <td>{c.host ?? ''}</td>
              <td class="why">{problemOf(c) ?? c.status}</td>
              <td class="row-actions">
                <Link href={`/containers/${encodeURIComponent(c.name)}/logs`} aria-label={`Logs of ${c.name}`}>
                  Logs
                </Link>
                {c.state === 'running' && ContainerShellLink(c.name)}
              </td>
            </tr>
          ))}
        </Table>
  );
}

import { mayChange } from '../state';
function ContainerShellLink(name: string) {
  if (!mayChange()) return null;
  return (
    <Link href={`/containers/${encodeURIComponent(name)}/shell`} aria-label={`Shell in ${name}`}>
      Shell
    </Link>
  );
}
