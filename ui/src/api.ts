// The REST API client: the session token from sessionStorage as a bearer token, errors as
// the API's own message (`{"error": {"code", "message", "field"}}`).

const TOKEN = 'drover.token';

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN);
}
export function setToken(t: string | null) {
  if (t) sessionStorage.setItem(TOKEN, t);
  else sessionStorage.removeItem(TOKEN);
}

let onUnauthorized: () => void = () => {};
export function whenSignedOut(f: () => void) {
  onUnauthorized = f;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = 'error';
  let message = `${res.status} ${res.statusText}`;
  let field: string | undefined;
  try {
    const body = await res.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      field = body.error.field ?? undefined;
    }
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, code, message, field);
}

export async function raw(method: string, path: string, body?: unknown, signal?: AbortSignal, accept?: string): Promise<Response> {
  const headers: Record<string, string> = {};
  if (accept) headers['Accept'] = accept;
  const t = token();
  if (t) headers['Authorization'] = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `cannot reach the server: ${(e as Error).message}`);
  }
  if (!res.ok) {
    const err = await errorOf(res);
    if (res.status === 401 && path !== '/v1/sessions') onUnauthorized();
    throw err;
  }
  return res;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await raw(method, path, body);
  if (res.status === 204 || res.status === 202) {
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T,>(path: string) => api<T>('GET', path);
export const post = <T,>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});
export const enc = encodeURIComponent;
export const envPath = (env: string, rest: string) => `/v1/environments/${enc(env)}${rest}`;

/** Streams a text response chunk by chunk until it ends or `signal` aborts it. */
export async function stream(path: string, onText: (s: string) => void, signal: AbortSignal): Promise<void> {
  const res = await raw('GET', path, undefined, signal);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

// Types of the responses the UI reads (api-types).
export interface WhoAmI { user: string; admin: boolean; roles: Record<string, string>; scope?: string | null }
export interface Environment { name: string }
export interface StackSummary {
  env: string; name: string; revision: number; services: number; containers: number; running: number;
  status: string; created_ms: number; updated_ms: number;
  catalog?: { catalog: string; template: string; version: string; newer?: string | null } | null;
}
export interface ContainerInfo {
  name: string; env: string; stack: string; service: string; slot: number; host?: string | null;
  state: string; health?: string | null; exit_code?: number | null; status: string; error?: string | null;
  waiting?: string | null; up_to_date: boolean; id?: string | null;
}
export interface RollStatus { revision: number; from: number; phase: string; reason?: string | null; rollback: boolean; cause?: string | null; updated: number }
export interface ServiceStatus { name: string; image: string; replicas: number; running: number; containers: ContainerInfo[]; roll?: RollStatus | null }
export interface StackDetail { stack: StackSummary; services: ServiceStatus[] }
export interface HostInfo {
  id: string; name: string; env: string; state: string; engine_version?: string | null; engine_error?: string | null;
  cpus?: number | null; memory?: number | null; labels: Record<string, string>; user_labels: Record<string, string>;
  draining: boolean; containers: number; reserved_cpu_milli: number; reserved_memory: number;
  free_cpu_milli?: number | null; free_memory?: number | null; last_seen_ms?: number | null;
}
/** `GET .../stats`: the last hour of samples (every 10 s) of hosts and containers. */
export interface HostSample { at_ms: number; cpu_percent: number; mem_used: number; mem_total: number }
export interface ContainerSample { at_ms: number; cpu_percent: number; mem_bytes: number; net_rx: number; net_tx: number; blk_read: number; blk_write: number }
export interface ContainerSeries { stack: string; service: string; host: string; mem_limit: number; samples: ContainerSample[] }
export interface Stats { hosts: Record<string, HostSample[]>; containers: Record<string, ContainerSeries> }
export interface Event { id: number; time_ms: number; env: string; actor: string; kind: string; subject: string; detail: string; source: string; result: string }
export interface Revision { revision: number; actor: string; time_ms: number; summary: string; current: boolean }
