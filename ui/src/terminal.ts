// The browser shell's terminal (xterm.js), loaded only when the shell page opens, joined to
// the exec WebSocket (`api_types::exec`): the first message is the request (JSON), then
// binary frames both ways (output's first byte: 1 stdout, 2 stderr), resize and eof as text
// frames from here, and the exit (or error) as the server's last text frame.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import '@xterm/xterm/css/xterm.css';

export interface Session {
  close(): void;
  fit(): void;
}

export function open(
  el: HTMLElement,
  url: string,
  token: string,
  cmd: string[],
  onEnd: (msg: string, ok: boolean) => void,
): Session {
  const term = new Terminal({
    cursorBlink: true,
    convertEol: false,
    fontFamily: '"Liberation Mono", ui-monospace, monospace',
    fontSize: 14,
    screenReaderMode: true,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  fit.fit();
  const ws = new WebSocket(url, ['drover.exec', `bearer.${token}`]);
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  let ended = false;
  const end = (msg: string, ok: boolean) => {
    if (ended) return;
    ended = true;
    term.write(`\r\n\x1b[2m[${msg}]\x1b[0m\r\n`);
    onEnd(msg, ok);
  };
  ws.onopen = () => {
    ws.send(JSON.stringify({ cmd, tty: true, stdin: true, cols: term.cols, rows: term.rows }));
    term.focus();
  };
  ws.onmessage = (m) => {
    if (typeof m.data === 'string') {
      const ev = JSON.parse(m.data);
      if (ev.type === 'exit') end(`exited with code ${ev.code}${ev.message ? `: ${ev.message}` : ''}`, ev.code === 0);
      else if (ev.type === 'error') end(`error: ${ev.message}`, false);
      return;
    }
    const b = new Uint8Array(m.data as ArrayBuffer);
    if (b.length > 1) term.write(b.subarray(1));
  };
  ws.onerror = () => end('the connection failed (is the container running, and may your role run commands?)', false);
  ws.onclose = (c) => end(`connection closed${c.reason ? `: ${c.reason}` : ''}`, false);
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
  });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  return {
    close() {
      ended = true;
      ws.close();
      term.dispose();
    },
    fit() {
      fit.fit();
    },
  };
}
