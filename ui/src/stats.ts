// The monitoring API's samples (`GET .../stats`, the last hour, one every 10 s), loaded
// again every 10 s, and the series the charts draw from them.
import { useEffect } from 'preact/hooks';
import { ContainerSeries, HostSample, Stats, envPath, get } from './api';
import { Point } from './chart';
import { Loaded, useLoad } from './ui';

export const REFRESH_MS = 10_000;

/** The stats of `env` (`query`: `?stack=…`), refreshed every 10 s while the page is visible. */
export function useStats(env: string, query: string, on = true): Loaded<Stats | undefined> {
  const s = useLoad(() => (on ? get<Stats>(envPath(env, `/stats${query}`)) : Promise.resolve(undefined)), [env, query, on], false);
  useEffect(() => {
    if (!on) return;
    const t = setInterval(() => {
      if (!document.hidden) s.reload();
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, [s.reload, on]);
  return s;
}

export function hostCpu(samples: HostSample[]): Point[] {
  return samples.map((s) => [s.at_ms, s.cpu_percent]);
}
export function hostMem(samples: HostSample[]): Point[] {
  return samples.map((s) => [s.at_ms, s.mem_used]);
}

export interface Use {
  cpu: Point[];
  mem: Point[];
}

export function containerUse(c: ContainerSeries): Use {
  return { cpu: c.samples.map((s) => [s.at_ms, s.cpu_percent]), mem: c.samples.map((s) => [s.at_ms, s.mem_bytes]) };
}

/** Samples older than this at a time do not count in a sum at that time. */
const STALE_MS = 15_000;

/** The sum of several containers' use: at each time any of them was sampled, each one's
 * latest sample not older than 15 s (containers on different hosts are sampled at different
 * moments). */
export function sumUse(series: ContainerSeries[]): Use {
  const times = [...new Set(series.flatMap((c) => c.samples.map((s) => s.at_ms)))].sort((a, b) => a - b);
  // Times within a second of the previous one are one moment.
  const moments: number[] = [];
  for (const t of times) if (!moments.length || t - moments[moments.length - 1] > 1000) moments.push(t);
  else moments[moments.length - 1] = t;
  const at = series.map(() => 0);
  const cpu: Point[] = [];
  const mem: Point[] = [];
  for (const t of moments) {
    let c = 0;
    let m = 0;
    let any = false;
    series.forEach((sr, i) => {
      const ss = sr.samples;
      while (at[i] + 1 < ss.length && ss[at[i] + 1].at_ms <= t) at[i]++;
      const s = ss[at[i]];
      if (s && s.at_ms <= t && t - s.at_ms <= STALE_MS) {
        c += s.cpu_percent;
        m += s.mem_bytes;
        any = true;
      }
    });
    if (any) {
      cpu.push([t, c]);
      mem.push([t, m]);
    }
  }
  return { cpu, mem };
}

export const pct = (v: number) => `${v < 10 ? v.toFixed(1) : Math.round(v)} %`;
