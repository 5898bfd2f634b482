import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { defaultCacheDir, isOnnxModelSpec, resolveModel } from '../../src/backbone/source.js';
import { loadEngine } from '../../src/backbone/load.js';
import { ModelOptionError, isUserError } from '../../src/backbone/errors.js';
import { findRegistryEntry, modelJsonUrl } from '../../src/backbone/registry.js';
import { fixture } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

/** Serves fixtures/tiny-graph on loopback and records the URLs asked for. */
async function serveFixture(): Promise<{ server: Server; base: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const name = (req.url ?? '').split('?')[0].split('/').pop() ?? '';
    const path = join(fixture('tiny-graph'), name);
    if (!name || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200).end(readFileSync(path));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, base: `http://127.0.0.1:${port}`, requests };
}

test('--model URL: downloaded once into the cache (weights keep the query string), then loaded from disk', async () => {
  const cache = tempDir('spp-cache-');
  const { server, base, requests } = await serveFixture();
  const url = `${base}/models/tiny/model.json?tfjs-format=file`;
  let first;
  try {
    first = await resolveModel(url, cache);
  } finally {
    server.close();
  }
  assert.deepEqual(requests, ['/models/tiny/model.json?tfjs-format=file', '/models/tiny/group1-shard1of1.bin?tfjs-format=file']);
  assert.ok(first.modelJsonPath.startsWith(cache));
  assert.deepEqual(readFileSync(first.modelJsonPath), readFileSync(fixture('tiny-graph', 'model.json')));
  assert.ok(!readdirSync(cache).some((f) => f.includes('partial')), 'no temp download folder left');
  // Server gone: the cache answers.
  const second = await resolveModel(url, cache);
  assert.equal(second.modelJsonPath, first.modelJsonPath);
});

test('a failed download leaves no cache entry and says how to work offline', async () => {
  const cache = tempDir('spp-cache-');
  const { server, base } = await serveFixture();
  try {
    await assert.rejects(resolveModel(`${base}/nothing/absent.json`, cache), /could not download .*HTTP 404.*--model \/path\/to\/dir/);
  } finally {
    server.close();
  }
  assert.deepEqual(readdirSync(cache), []);
});

test('registry ids: aliases, URLs as @tensorflow-models/mobilenet uses them, XDG cache dir', () => {
  assert.equal(findRegistryEntry('mobilenet_v2_1.0')?.id, 'mobilenet_v2_1.00');
  assert.equal(findRegistryEntry('v1-0.25')?.id, 'mobilenet_v1_0.25');
  assert.equal(findRegistryEntry('mobilenet_v2_0.25'), undefined, 'v2 has no α0.25');
  assert.equal(modelJsonUrl(findRegistryEntry('v1_1.0')!), 'https://tfhub.dev/google/imagenet/mobilenet_v1_100_224/classification/1/model.json?tfjs-format=file');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/spp-extract');
  assert.match(defaultCacheDir({ HOME: '/home/u' }), /\.cache\/spp-extract$/);
});

test('.onnx models: one rule for paths and URLs; an .onnx URL is refused as the user\'s mistake, not fallen back from', async () => {
  for (const spec of ['net.onnx', '/a/b/NET.ONNX', 'https://example.com/m/net.onnx', 'http://example.com/net.onnx?download=1']) {
    assert.equal(isOnnxModelSpec(spec), true, spec);
  }
  for (const spec of [undefined, 'mobilenet_v2_1.00', '/a/model.json', 'https://example.com/net.onnx/model.json', 'https://example.com/m?f=net.onnx', 'onnx']) {
    assert.equal(isOnnxModelSpec(spec), false, String(spec));
  }
  const cacheDir = tempDir('spp-cache-');
  await assert.rejects(loadEngine({ model: 'https://example.com/m/net.onnx', cacheDir }), (err: Error) => {
    assert.ok(err instanceof ModelOptionError && isUserError(err), String(err));
    assert.match(err.message, /^--model https:\/\/example\.com\/m\/net\.onnx: a \.onnx model is read from a local file/);
    return true;
  });
  await assert.rejects(loadEngine({ model: 'https://example.com/m/net.onnx', engine: 'tfjs', cacheDir }), /--engine tfjs cannot run an \.onnx model/);
  assert.deepEqual(readdirSync(cacheDir), [], 'nothing downloaded');
});

test('a local model.json whose weight paths leave its folder is refused before any weight is read', async () => {
  const { readModelFile } = await import('../../src/backbone/artifacts.js');
  const { writeFileSync, cpSync } = await import('node:fs');
  const dir = tempDir('spp-local-escape-');
  cpSync(fixture('tiny-layers'), dir, { recursive: true });
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  for (const bad of ['../secret.bin', '/etc/passwd', 'a\\..\\b.bin', '%2e%2e/x.bin']) {
    json.weightsManifest[0].paths = [bad];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    await assert.rejects(readModelFile(join(dir, 'model.json')), (err: Error) => {
      assert.ok(err instanceof ModelOptionError, bad);
      assert.ok(err.message.startsWith(`--model: refusing weight path ${JSON.stringify(bad)} in `), err.message);
      return true;
    });
    await assert.rejects(loadEngine({ model: dir, cacheDir: tempDir('spp-cache-') }), /refusing weight path/, `${bad}: the engine refuses it too`);
  }
});
