// Users (admins), the environment's members and roles (owners change them), one's API keys
// (a new key is shown once) and one's password.
import { useState } from 'preact/hooks';
import { api, enc, envPath, get, post } from '../api';
import { useSignal } from '../signal';
import { ROLES, env, envs, mayGovern, me } from '../state';
import { ErrorBox, Page, ago, useAction, useLoad, when, Table } from '../ui';

interface UserInfo { name: string; admin: boolean; source: string; created_ms: number }
interface Member { subject: string; role: string }
interface TokenInfo { id: string; user: string; name?: string | null; env?: string | null; created_ms: number; expires_ms?: number | null; last_used_ms?: number | null }

function Users() {
  const users = useLoad(() => get<UserInfo[]>('/v1/users'), [], false);
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [admin, setAdmin] = useState(false);
  const [run, error, busy] = useAction();
  const create = (ev: Event) => {
    ev.preventDefault();
    run(async () => {
      await post('/v1/users', { name, password, admin });
      setName('');
      setPassword('');
      setAdmin(false);
      users.reload();
    });
  };
  return (
    <section aria-labelledby="users-h">
      <h2 id="users-h">Users</h2>
      <ErrorBox error={users.error} />
      <Table head={['User', 'Admin', 'Source', 'Created', '']}>
            {(users.data ?? []).map((u) => (
              <tr>
                <td>{u.name}</td>
                <td>{u.admin ? 'yes' : ''}</td>
                <td>{u.source}</td>
                <td>{when(u.created_ms)}</td>
                <td>
                  {u.name !== me.value?.user && (
                    <button type="button" class="danger" aria-label={`Remove user ${u.name}`} onClick={() => confirm(`Remove user ${u.name}?`) && run(() => api('DELETE', `/v1/users/${enc(u.name)}`).then(users.reload))}>
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </Table>
      <form class="filters" onSubmit={create}>
        <div>
          <label for="new-user">New user's name</label>
          <input id="new-user" required value={name} autocomplete="off" onInput={(ev) => setName(ev.currentTarget.value)} />
        </div>
        <div>
          <label for="new-user-pw">Password</label>
          <input id="new-user-pw" type="password" autocomplete="new-password" required value={password} onInput={(ev) => setPassword(ev.currentTarget.value)} />
        </div>
        <div>
          <label>
            <input type="checkbox" checked={admin} onChange={(ev) => setAdmin(ev.currentTarget.checked)} /> Admin
          </label>
        </div>
        <button type="submit" disabled={busy}>
          Create user
        </button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}

function Members() {
  const e = useSignal(env);
  const members = useLoad(() => get<Member[]>(envPath(e, '/members')), [e], false);
  const [subject, setSubject] = useState('');
  const [role, setRole] = useState('member');
  const [run, error, busy] = useAction();
  const set = (s: string, r: string) => run(() => api('PUT', envPath(e, '/members'), { subject: s, role: r }).then(members.reload));
  const govern = mayGovern();
  return (
    <section aria-labelledby="members-h">
      <h2 id="members-h">Members of {e}</h2>
      <ErrorBox error={members.error} />
      <Table head={['User or group', 'Role', govern && '']}>
            {(members.data ?? []).map((m) => (
              <tr>
                <td>{m.subject}</td>
                <td>
                  {govern ? (
                    <>
                      <label class="sr-only" for={`role-${m.subject}`}>
                        Role of {m.subject}
                      </label>
                      <select id={`role-${m.subject}`} value={m.role} onChange={(ev) => set(m.subject, ev.currentTarget.value)}>
                        {ROLES.map((r) => (
                          <option value={r}>{r}</option>
                        ))}
                      </select>
                    </>
                  ) : (
                    m.role
                  )}
                </td>
                {govern && (
                  <td>
                    <button type="button" class="danger" aria-label={`Remove member ${m.subject}`} onClick={() => run(() => api('DELETE', envPath(e, `/members/${enc(m.subject)}`)).then(members.reload))}>
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </Table>
      {govern && (
        <form
          class="filters"
          onSubmit={(ev) => {
            ev.preventDefault();
            set(subject.trim(), role);
            setSubject('');
          }}
        >
          <div>
            <label for="member-subject">User, or group:DN</label>
            <input id="member-subject" required value={subject} onInput={(ev) => setSubject(ev.currentTarget.value)} />
          </div>
          <div>
            <label for="member-role">Role</label>
            <select id="member-role" value={role} onChange={(ev) => setRole(ev.currentTarget.value)}>
              {ROLES.map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
          </div>
          <button type="submit" disabled={busy}>
            Add member
          </button>
        </form>
      )}
      <ErrorBox error={error} />
    </section>
  );
}

function Keys() {
  const list = useSignal(envs);
  const keys = useLoad(() => get<TokenInfo[]>('/v1/apikeys'), [], false);
  const [name, setName] = useState('');
  const [scope, setScope] = useState('');
  const [days, setDays] = useState('');
  const [made, setMade] = useState<string | null>(null);
  const [run, error, busy] = useAction();
  const create = (ev: Event) => {
    ev.preventDefault();
    run(async () => {
      const k = await post<{ token: string }>('/v1/apikeys', {
        ...(name.trim() ? { name: name.trim() } : {}),
        ...(scope ? { env: scope } : {}),
        ...(days ? { expires_in_s: Number(days) * 86400 } : {}),
      });
      setMade(k.token);
      setName('');
      keys.reload();
    });
  };
  return (
    <section aria-labelledby="keys-h">
      <h2 id="keys-h">Your API keys</h2>
      <ErrorBox error={keys.error} />
      <Table head={['Name', 'Environment', 'Created', 'Expires', 'Last used', '']}>
            {(keys.data ?? []).map((k) => (
              <tr>
                <td>{k.name ?? k.id}</td>
                <td>{k.env ?? 'all'}</td>
                <td>{when(k.created_ms)}</td>
                <td>{k.expires_ms ? when(k.expires_ms) : 'never'}</td>
                <td>{ago(k.last_used_ms)}</td>
                <td>
                  <button type="button" class="danger" aria-label={`Revoke key ${k.name ?? k.id}`} onClick={() => run(() => api('DELETE', `/v1/apikeys/${enc(k.id)}`).then(keys.reload))}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </Table>
      <form class="filters" onSubmit={create}>
        <div>
          <label for="key-name">Key name</label>
          <input id="key-name" value={name} onInput={(ev) => setName(ev.currentTarget.value)} />
        </div>
        <div>
          <label for="key-env">Environment</label>
          <select id="key-env" value={scope} onChange={(ev) => setScope(ev.currentTarget.value)}>
            <option value="">all of mine</option>
            {list.map((x) => (
              <option value={x.name}>{x.name}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="key-days">Expires in (days, empty: never)</label>
          <input id="key-days" type="number" min="1" value={days} onInput={(ev) => setDays(ev.currentTarget.value)} />
        </div>
        <button type="submit" disabled={busy}>
          Create API key
        </button>
      </form>
      {made && (
        <div class="once" role="status">
          <p>
            <strong>Your new key, shown only this once:</strong>
          </p>
          <code class="secret">{made}</code>
          <button type="button" onClick={() => navigator.clipboard?.writeText(made)}>
            Copy
          </button>
          <button type="button" onClick={() => setMade(null)}>
            Done
          </button>
        </div>
      )}
      <ErrorBox error={error} />
    </section>
  );
}

function Password() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [done, setDone] = useState(false);
  const [run, error, busy] = useAction();
  return (
    <section aria-labelledby="pw-h">
      <h2 id="pw-h">Your password</h2>
      <form
        class="filters"
        onSubmit={(ev) => {
          ev.preventDefault();
          setDone(false);
          run(() => api('PUT', '/v1/password', { current, password: next }).then(() => setDone(true)));
        }}
      >
        <div>
          <label for="pw-current">Current password</label>
          <input id="pw-current" type="password" autocomplete="current-password" value={current} onInput={(ev) => setCurrent(ev.currentTarget.value)} />
        </div>
        <div>
          <label for="pw-new">New password</label>
          <input id="pw-new" type="password" autocomplete="new-password" required value={next} onInput={(ev) => setNext(ev.currentTarget.value)} />
        </div>
        <button type="submit" disabled={busy}>
          Change password
        </button>
      </form>
      {done && <p role="status">Password changed.</p>}
      <ErrorBox error={error} />
    </section>
  );
}

export function Access() {
  const who = useSignal(me);
  useSignal(env);
  return (
    <Page title="Users, members and keys">
      {who?.admin && <Users />}
      <Members />
      <Keys />
      <Password />
    </Page>
  );
}
