// The environment's ingress: the hosts that serve it, every route (from `x-drover.expose`)
// with its backends and whether each gets requests, and the TLS certificates (added here by
// members and owners; a key is sent once and never shown).
import { useState } from 'preact/hooks';
import { api, enc, envPath, get, post } from '../api';
import { useSignal } from '../signal';
import { env, mayHosts } from '../state';
import { Badge, ErrorBox, Page, useAction, useLoad, when, Table } from '../ui';

interface Backend { container: string; host?: string | null; addr?: string | null; state: string; health?: string | null; in_rotation: boolean }
interface Route { kind: string; host?: string | null; path?: string | null; listen?: number | null; stack: string; service: string; port: number; tls?: string | null; problem?: string | null; backends: Backend[] }
interface View { hosts: { name: string; state: string }[]; routes: Route[] }
interface Cert { name: string; domains: string[]; expires_ms: number; source: string; created_ms: number }

const front = (r: Route) => (r.kind === 'tcp' ? `tcp :${r.listen}` : `${r.host ?? '*'}${r.path ?? '/'}`);

function readFile(f: File | undefined, set: (s: string) => void) {
  if (f) f.text().then(set);
}

function AddCert({ onDone }: { onDone: () => void }) {
  const e = useSignal(env);
  const [name, setName] = useState('');
  const [cert, setCert] = useState('');
  const [key, setKey] = useState('');
  const [run, error, busy] = useAction();
  const add = (ev: Event) => {
    ev.preventDefault();
    run(async () => {
      await post(envPath(e, '/certs'), { name, cert_pem: cert, key_pem: key });
      setName('');
      setCert('');
      setKey('');
      onDone();
    });
  };
  return (
    <form class="label-form" onSubmit={add} aria-labelledby="cert-add-h">
      <h3 id="cert-add-h">Add a certificate</h3>
      <label for="cert-name">Name (what routes name it by: tls: NAME)</label>
      <input id="cert-name" required pattern="[a-z0-9][a-z0-9_.\-]{0,62}" value={name} autocomplete="off" onInput={(ev) => setName(ev.currentTarget.value)} />
      <label for="cert-pem">Certificate chain (PEM, leaf first)</label>
      <textarea id="cert-pem" rows={4} required value={cert} onInput={(ev) => setCert(ev.currentTarget.value)} />
      <label for="cert-file">…or its file</label>
      <input id="cert-file" type="file" accept=".pem,.crt,.cer" onChange={(ev) => readFile(ev.currentTarget.files?.[0], setCert)} />
      <label for="key-pem">Private key (PEM; sent once, never shown again)</label>
      <textarea id="key-pem" rows={4} required value={key} autocomplete="off" onInput={(ev) => setKey(ev.currentTarget.value)} />
      <label for="key-file">…or its file</label>
      <input id="key-file" type="file" accept=".pem,.key" onChange={(ev) => readFile(ev.currentTarget.files?.[0], setKey)} />
      <ErrorBox error={error} />
      <div class="toolbar">
        <button type="submit" class="primary" disabled={busy}>
          Add certificate
        </button>
      </div>
    </form>
  );
}

export function Ingress() {
  const e = useSignal(env);
  const view = useLoad(() => get<View>(envPath(e, '/ingress')), [e]);
  const certs = useLoad(() => get<Cert[]>(envPath(e, '/certs')), [e]);
  const [run, error] = useAction();
  const may = mayHosts();
  const v = view.data;
  return (
    <Page title="Ingress">
      <ErrorBox error={view.error || certs.error || error} />
      <section aria-labelledby="ingress-hosts-h">
        <h2 id="ingress-hosts-h">Ingress hosts</h2>
        {v && v.hosts.length === 0 ? (
          <p class="hint">No host serves the ingress: label one drover.ingress=true (Hosts page, or drover host label HOST drover.ingress=true).</p>
        ) : (
          <ul>
            {(v?.hosts ?? []).map((h) => (
              <li>
                {h.name} <Badge value={h.state} />
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="routes-h">
        <h2 id="routes-h">Routes</h2>
        {v && v.routes.length === 0 && <p class="hint">No service exposes anything: add x-drover.expose to a service.</p>}
        {v && v.routes.length > 0 && (
          <Table head={['Route', 'Service', 'TLS', 'Backends', 'Problem']}>
            {v.routes.map((r) => (
              <tr>
                <th scope="row">{front(r)}</th>
                <td>
                  {r.stack}/{r.service}:{r.port}
                </td>
                <td>{r.tls ?? '–'}</td>
                <td>
                  {r.backends.length === 0
                    ? 'none'
                    : r.backends.map((b) => (
                        <div>
                          {b.container} <Badge value={b.health ?? b.state} /> {b.in_rotation ? 'in rotation' : <strong>out of rotation</strong>}
                          {b.host && <span class="meta"> on {b.host}</span>}
                        </div>
                      ))}
                </td>
                <td>{r.problem && <span class="why">{r.problem}</span>}</td>
              </tr>
            ))}
          </Table>
        )}
      </section>
      <section aria-labelledby="certs-h">
        <h2 id="certs-h">Certificates</h2>
        <Table head={['Name', 'Domains', 'Expires', 'Source', may && '']}>
          {(certs.data ?? []).map((c) => (
            <tr>
              <th scope="row">{c.name}</th>
              <td>{c.domains.join(', ')}</td>
              <td>{when(c.expires_ms)}</td>
              <td>{c.source}</td>
              {may && (
                <td>
                  <button type="button" class="danger" aria-label={`Remove certificate ${c.name}`} onClick={() => confirm(`Remove certificate ${c.name}?`) && run(() => api('DELETE', envPath(e, `/certs/${enc(c.name)}`)).then(certs.reload))}>
                    Remove
                  </button>
                </td>
              )}
            </tr>
          ))}
        </Table>
        {may && <AddCert onDone={certs.reload} />}
      </section>
    </Page>
  );
}
