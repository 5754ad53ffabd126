// Loading the client: as CommonJS, as an ES module (ws4redis.mjs), as a classic
// browser script and as a browser module script.  Run with: node --test tests/js/
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { test } from 'node:test';

import WS4RedisDefault, { WS4Redis as WS4RedisNamed } from '../../django_bridge/static/django_bridge/js/ws4redis.mjs';

const require = createRequire(import.meta.url);
const jsUrl = new URL('../../django_bridge/static/django_bridge/js/ws4redis.js', import.meta.url);
const mjsUrl = new URL('../../django_bridge/static/django_bridge/js/ws4redis.mjs', import.meta.url);
const jsPath = fileURLToPath(jsUrl);

test('the ES module exports the CommonJS function, as default and by name', () => {
  const cjs = require(jsPath);
  assert.equal(typeof cjs, 'function');
  assert.equal(cjs.name, 'WS4Redis');
  assert.equal(WS4RedisDefault, cjs);
  assert.equal(WS4RedisNamed, cjs);
  assert.equal(globalThis.WS4Redis, cjs);
});

test('the ES module does not carry a second implementation', () => {
  const source = readFileSync(mjsUrl, 'utf8');
  assert.match(source, /^import '\.\/ws4redis\.js';$/m);
  assert.doesNotMatch(source, /setTimeout|setInterval|readyState/);
});

test('a client made through the ES module connects', () => {
  const urls = [];
  class FakeWebSocket {
    constructor(url) {
      urls.push(url);
      this.readyState = 0;
    }
  }
  const client = WS4RedisDefault({ uri: 'ws://example.test/ws/x', WebSocket: FakeWebSocket });
  assert.deepEqual(urls, ['ws://example.test/ws/x']);
  assert.ok(client.is_connecting());
});

test('as a classic browser script it defines the global WS4Redis', () => {
  const window = { WebSocket: class {} };
  const context = vm.createContext(window); // no `module`, no `require`
  vm.runInContext(readFileSync(jsUrl, 'utf8'), context, { filename: 'ws4redis.js' });
  assert.equal(typeof window.WS4Redis, 'function');
  assert.equal(vm.runInContext('typeof WS4Redis', context), 'function');
  assert.throws(() => vm.runInContext('WS4Redis({})', context), /uri/);
});

test('as a browser module script, `import WS4Redis from ".../ws4redis.mjs"` works', () => {
  // Evaluate both files as real ES modules (strict, no `module`, top-level
  // `this` undefined) in a fresh global, resolving the relative import the way
  // a browser does.  vm.SourceTextModule needs --experimental-vm-modules.
  const script = `
    const vm = require('node:vm');
    const { readFileSync } = require('node:fs');
    const [mjsUrl] = process.argv.slice(1);
    const context = vm.createContext({});
    const modules = new Map();
    function load(url) {
      if (!modules.has(url)) {
        const source = readFileSync(new URL(url), 'utf8');
        modules.set(url, new vm.SourceTextModule(source, { context, identifier: url }));
      }
      return modules.get(url);
    }
    (async () => {
      const entry = load(mjsUrl);
      await entry.link((specifier, referrer) => load(new URL(specifier, referrer.identifier).href));
      await entry.evaluate();
      const ns = entry.namespace;
      const ok = typeof ns.default === 'function' && ns.default === ns.WS4Redis
        && ns.default === vm.runInContext('globalThis.WS4Redis', context);
      console.log(JSON.stringify({ ok, modules: [...modules.keys()].length }));
    })().catch((err) => { console.error(err); process.exit(1); });
  `;
  const result = spawnSync(
    process.execPath,
    ['--experimental-vm-modules', '--no-warnings', '-e', script, mjsUrl.href],
    { encoding: 'utf8', timeout: 30000 },
  );
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), { ok: true, modules: 2 });
});
