// The audit log, newest first, with filters (`/v1/audit` for admins, the environment's
// otherwise) and pages (`before`).
import { useState } from 'preact/hooks';
import { Event, envPath, get } from '../api';
import { useSignal } from '../signal';
import { env, me } from '../state';
import { Badge, ErrorBox, Page, useLoad, when, Table } from '../ui';

const PAGE = 50;

export function Audit() {
  const e = useSignal(env);
  const who = useSignal(me);
  const [user, setUser] = useState('');
  const [action, setAction] = useState('');
  const [since, setSince] = useState('');
  const [applied, setApplied] = useState({ user: '', action: '', since: '' });
  const [before, setBefore] = useState<number[]>([]);
  const [all, setAll] = useState(false);
  const cursor = before[before.length - 1];
  const q = new URLSearchParams();
  if (applied.user) q.set('user', applied.user);
  if (applied.action) q.set('action', applied.action);
  if (applied.since) q.set('since_s', applied.since);
  if (cursor) q.set('before', String(cursor));
  q.set('limit', String(PAGE));
  const everywhere = who?.admin && all;
  const url = everywhere ? `/v1/audit?${q}` : envPath(e, `/audit?${q}`);
  const events = useLoad(() => get<Event[]>(url), [url]);
  const apply = (ev: Event | SubmitEvent) => {
    (ev as SubmitEvent).preventDefault();
    setBefore([]);
    setApplied({ user: user.trim(), action: action.trim(), since });
  };
  const rows = events.data ?? [];
  return (
    <Page title="Audit log">
      <form class="filters" onSubmit={apply as (e: SubmitEvent) => void}>
        <div>
          <label for="f-user">User</label>
          <input id="f-user" value={user} onInput={(ev) => setUser(ev.currentTarget.value)} />
        </div>
        <div>
          <label for="f-action">Action starts with</label>
          <input id="f-action" value={action} placeholder="stack., user.login" onInput={(ev) => setAction(ev.currentTarget.value)} />
        </div>
        <div>
          <label for="f-since">Since</label>
          <select id="f-since" value={since} onChange={(ev) => setSince(ev.currentTarget.value)}>
            <option value="">any time</option>
            <option value="3600">the last hour</option>
            <option value="86400">the last day</option>
            <option value="604800">the last week</option>
          </select>
        </div>
        {who?.admin && (
          <div>
            <label>
              <input type="checkbox" checked={all} onChange={(ev) => setAll(ev.currentTarget.checked)} /> All environments
            </label>
          </div>
        )}
        <button type="submit">Filter</button>
      </form>
      <ErrorBox error={events.error} />
      <Table head={['When', everywhere && 'Environment', 'Who', 'Action', 'Subject', 'Detail', 'Result', 'From']}>
            {rows.map((r) => (
              <tr>
                <td>{when(r.time_ms)}</td>
                {everywhere && <td>{r.env}</td>}
                <td>{r.actor}</td>
                <td>{r.kind}</td>
                <td>{r.subject}</td>
                <td class="why">{r.detail}</td>
                <td>
                  <Badge value={r.result} />
                </td>
                <td>{r.source}</td>
              </tr>
            ))}
          </Table>
      {events.data && rows.length === 0 && <p>No events.</p>}
      <div class="pager">
        <button type="button" disabled={!before.length} onClick={() => setBefore(before.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={rows.length < PAGE} onClick={() => setBefore([...before, rows[rows.length - 1].id])}>
          Older
        </button>
      </div>
    </Page>
  );
}
