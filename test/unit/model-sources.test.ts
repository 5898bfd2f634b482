import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactedUrl } from '../../src/backbone/download.js';
import { findRegistryEntry, mirrorModelJsonUrl, MODEL_REGISTRY } from '../../src/backbone/registry.js';
import { mirrorBase, registrySources } from '../../src/backbone/source.js';

test('a redirect hop is shown without its query string', () => {
  assert.equal(redactedUrl('https://storage.example/b/1/model.json?X-Goog-Signature=abc&X-Goog-Expires=9'), 'https://storage.example/b/1/model.json?…');
  assert.equal(redactedUrl('https://storage.example/b/1/model.json'), 'https://storage.example/b/1/model.json');
  assert.equal(redactedUrl('not a url'), '(unparsable URL)');
});

test('registry sources: TF Hub first, the TF.js module bucket second; the mirror alone when set', () => {
  const e = findRegistryEntry('v2_1.0')!;
  assert.deepEqual(registrySources(e, ''), { urls: [
    'https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/classification/2/model.json?tfjs-format=file',
    'https://storage.googleapis.com/tfhub-tfjs-modules/google/imagenet/mobilenet_v2_100_224/classification/2/model.json',
  ] });
  assert.deepEqual(registrySources(e, 'https://mirror.example/spp/'), {
    urls: ['https://mirror.example/spp/mobilenet_v2_1.00/model.json'], mirror: 'https://mirror.example/spp/',
  });
  assert.equal(registrySources(e, '/srv/models').urls[0], 'file:///srv/models/mobilenet_v2_1.00/model.json');
  assert.equal(mirrorModelJsonUrl('http://h/a//', e), 'http://h/a/mobilenet_v2_1.00/model.json');
  assert.equal(mirrorBase('file:///srv/m'), 'file:///srv/m');
  assert.throws(() => mirrorBase('ftp://h/m'), { message: "SPP_EXTRACT_MODEL_MIRROR: expected an http(s) URL or a folder, got 'ftp://h/m'" });
});

test('pins are data: lowercase SHA-256 hex for files the entry names, with the byte total', () => {
  for (const e of MODEL_REGISTRY) {
    for (const [name, pin] of Object.entries(e.sha256 ?? {})) assert.match(pin, /^[0-9a-f]{64}$/, `${e.id} ${name}`);
    if (e.sha256) assert.ok(e.sha256['model.json'] && e.bytes, `${e.id}: model.json pinned, size known`);
  }
  assert.ok(findRegistryEntry('v1_0.25')!.sha256, 'v1 α0.25 is pinned');
});
