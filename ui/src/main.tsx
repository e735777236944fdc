// The app: sign-in, the frame (navigation, environment switcher, who is signed in) and
// the routes.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { ApiError, Environment, WhoAmI, api, get, setToken, token, whenSignedOut } from './api';
import { match, navigate, path } from './router';
import { useSignal } from './signal';
import { env, envs, live, me, role, stopWatching, watch } from './state';
import { ErrorBox, Link, useAction } from './ui';
import { Dashboard } from './pages/dashboard';
import { StackPage, Stacks } from './pages/stacks';
import { Deploy } from './pages/deploy';
import { Hosts } from './pages/hosts';
import { Logs } from './pages/logs';
import { Shell } from './pages/shell';
import { Audit } from './pages/audit';
import { Access } from './pages/access';
import { Catalog, TemplatePage } from './pages/catalog';
import { Ingress } from './pages/ingress';

function SignIn({ onDone }: { onDone: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [run, error, busy] = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    run(async () => {
      const s = await api<{ token: string }>('POST', '/v1/sessions', { username, password });
      setToken(s.token);
      onDone();
    });
  };
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to Drover</h1>
        <p class="hint">Local and directory (LDAP) users sign in here alike.</p>
        <label for="username">User name</label>
        <input id="username" name="username" autocomplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

const NAV: [string, string][] = [
  ['/', 'Dashboard'],
  ['/stacks', 'Stacks'],
  ['/hosts', 'Hosts'],
  ['/ingress', 'Ingress'],
  ['/deploy', 'Deploy'],
  ['/catalog', 'Catalog'],
  ['/audit', 'Audit log'],
  ['/access', 'Users & keys'],
];

function Frame({ children }: { children: preact.ComponentChildren }) {
  const p = useSignal(path);
  const who = useSignal(me);
  const list = useSignal(envs);
  const current = useSignal(env);
  const state = useSignal(live);
  const [menu, setMenu] = useState(false);
  const signOut = async () => {
    try {
      await api('DELETE', '/v1/sessions/current');
    } catch {
      /* the session may be gone already */
    }
    setToken(null);
    stopWatching();
    me.set(null);
    navigate('/', true);
  };
  const here = p.split('?')[0];
  const active = (href: string) => (href === '/' ? here === '/' : here === href || here.startsWith(href + '/'));
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand" aria-label="Drover dashboard">
          Drover
        </Link>
        <button type="button" class="menu-toggle" aria-expanded={menu} aria-controls="nav" onClick={() => setMenu(!menu)}>
          Menu
        </button>
        <nav id="nav" aria-label="Main" class={menu ? 'open' : ''} onClick={() => setMenu(false)}>
          {NAV.map(([href, label]) => (
            <Link href={href} aria-current={active(href) ? 'page' : undefined}>
              {label}
            </Link>
          ))}
        </nav>
        <div class="who">
          <label for="env-switch">Environment</label>
          <select id="env-switch" value={current} onChange={(e) => env.set(e.currentTarget.value)}>
            {list.map((e) => (
              <option value={e.name}>{e.name}</option>
            ))}
          </select>
          <span class="user" title={state === 'live' ? 'updates live' : 'updates every 2 s'}>
            {who?.user} <span class="role">({role() ?? 'no role'})</span>
            <span class={`dot ${state}`} aria-label={state === 'live' ? 'live updates' : 'polling'} role="img" />
          </span>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">{children}</main>
    </>
  );
}

function Routes() {
  const p = useSignal(path);
  useSignal(env);
  const here = p.split('?')[0];
  let m: Record<string, string> | null;
  if (here === '/') return <Dashboard />;
  if (here === '/stacks') return <Stacks />;
  if ((m = match('/stacks/:name', here))) return <StackPage name={m.name} />;
  if (here === '/hosts') return <Hosts />;
  if (here === '/ingress') return <Ingress />;
  if (here === '/deploy') return <Deploy />;
  if ((m = match('/containers/:name/logs', here))) return <Logs name={m.name} />;
  if ((m = match('/containers/:name/shell', here))) return <Shell name={m.name} />;
  if (here === '/audit') return <Audit />;
  if (here === '/access') return <Access />;
  if (here === '/catalog') return <Catalog />;
  if ((m = match('/catalog/:catalog/:template', here))) return <TemplatePage catalog={m.catalog} template={m.template} />;
  return (
    <>
      <h1>Not found</h1>
      <p>
        No page at <code>{here}</code>. <Link href="/">Go to the dashboard</Link>.
      </p>
    </>
  );
}

function App() {
  const who = useSignal(me);
  const current = useSignal(env);
  const p = useSignal(path);
  const [error, setError] = useState<unknown>(null);
  const [checking, setChecking] = useState(!!token());
  const start = async () => {
    setChecking(true);
    try {
      const [w, list] = await Promise.all([get<WhoAmI>('/v1/whoami'), get<Environment[]>('/v1/environments')]);
      envs.set(list);
      if (!list.some((e) => e.name === env.value) && list.length) env.set(list[0].name);
      me.set(w);
      setError(null);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) setError(e);
      setToken(null);
    } finally {
      setChecking(false);
    }
  };
  useEffect(() => {
    whenSignedOut(() => {
      setToken(null);
      stopWatching();
      me.set(null);
    });
    if (token()) start();
  }, []);
  useEffect(() => {
    if (who) watch();
  }, [who, current]);
  // Focus the page's heading when the route changes (screen readers hear where they are).
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    setTimeout(() => document.getElementById('page-title')?.focus(), 0);
  }, [p]);
  if (checking) return <p class="loading">Loading…</p>;
  if (!who)
    return (
      <>
        <ErrorBox error={error} />
        <SignIn onDone={start} />
      </>
    );
  return (
    <Frame>
      <Routes />
    </Frame>
  );
}

render(<App />, document.getElementById('app')!);
