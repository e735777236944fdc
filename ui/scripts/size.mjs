// Prints the built UI's size, raw and gzip'd: the first page's files (index.html and the
// entry's JS and CSS) and everything (the shell's terminal is loaded only when opened).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const files = [];
(function walk(d) {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
})(dist);
const index = readFileSync(join(dist, 'index.html'), 'utf8');
const first = new Set([join(dist, 'index.html')]);
for (const m of index.matchAll(/(?:src|href)="\/([^"]+)"/g)) first.add(join(dist, m[1]));
let all = [0, 0], initial = [0, 0];
for (const f of files) {
  const b = readFileSync(f);
  const z = gzipSync(b, { level: 9 }).length;
  all = [all[0] + b.length, all[1] + z];
  if (first.has(f)) initial = [initial[0] + b.length, initial[1] + z];
  console.log(`  ${f.slice(dist.length).padEnd(40)} ${(b.length / 1024).toFixed(1).padStart(7)} KiB  gzip ${(z / 1024).toFixed(1).padStart(6)} KiB`);
}
const k = (n) => (n / 1024).toFixed(1) + ' KiB';
console.log(`UI size: first page ${k(initial[0])} (gzip'd ${k(initial[1])}); all files ${k(all[0])} (gzip'd ${k(all[1])})`);
