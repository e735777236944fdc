import { defineConfig } from 'vite';

// Preact's JSX runtime (from tsconfig's jsxImportSource); no plugin needed.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The server's CSP allows no inline script: no polyfill injected.
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: { proxy: { '/v1': 'http://127.0.0.1:7480' } },
});
