import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkWeightPath, downloadLimits, parseByteSize, resolveModel } from '../../src/backbone/source.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture } from '../helpers/shared.js';
import { serve, type Handler } from '../helpers/serve.js';


const tinyJson = JSON.parse(readFileSync(fixture('tiny-graph', 'model.json'), 'utf8')) as { weightsManifest: { paths: string[]; weights: unknown[] }[] };
const tinyWeights = readFileSync(fixture('tiny-graph', 'group1-shard1of1.bin'));

/** tiny-graph's model.json with the shard renamed to `path`. */
function modelJsonWithPath(path: string): string {
  return JSON.stringify({ ...tinyJson, weightsManifest: [{ ...tinyJson.weightsManifest[0], paths: [path] }] });
}

const json = (body: string): Handler => (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end(body);
const bytes = (body: Buffer): Handler => (_req, res) => void res.writeHead(200).end(body);
/** Writes zeros until the client goes away. */
const endless: Handler = (_req, res) => {
  res.writeHead(200);
  const chunk = Buffer.alloc(64 * 1024);
  const pump = () => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  res.on('close', () => res.removeAllListeners('drain'));
  pump();
};

/** Everything under `dir`, recursively (files and folders). */
function tree(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).sort() : [];
}

test('weight paths: traversal (plain, absolute, percent-encoded, backslash, URL) is refused before anything is fetched or written', async () => {
  const outside = tempDir('spp-outside-');
  const escape = `${'../'.repeat(12)}${outside.slice(1)}/PWNED.bin`;
  const hostile = [
    escape,
    `${outside}/PWNED.bin`,
    `${'%2e%2e/'.repeat(12)}${outside.slice(1)}/PWNED.bin`,
    `${'%2E%2E%2F'.repeat(12)}${outside.slice(1)}%2FPWNED.bin`,
    `${'..\\'.repeat(12)}PWNED.bin`,
    `sub/../../PWNED.bin`,
    'http://127.0.0.2/PWNED.bin',
    '//127.0.0.2/PWNED.bin',
  ];
  for (const path of hostile) {
    const cache = tempDir('spp-cache-');
    const srv = await serve({ '/m/model.json': json(modelJsonWithPath(path)), '/PWNED.bin': bytes(tinyWeights) });
    try {
      await assert.rejects(resolveModel(`${srv.base}/m/model.json`, cache), (err: Error) => {
        assert.ok(err.message.includes(`refusing weight path ${JSON.stringify(path)} in ${srv.base}/m/model.json`), err.message);
        assert.ok(!err.message.includes('\n'), 'one line');
        return true;
      });
      assert.deepEqual(srv.requests, ['/m/model.json'], `${path}: no weight request`);
    } finally {
      await srv.close();
    }
    assert.deepEqual(tree(cache), [], `${path}: no partial cache`);
    assert.deepEqual(tree(outside), [], `${path}: nothing written outside the cache`);
  }
  // Ordinary names, subfolders included, pass.
  assert.equal(checkWeightPath('group1-shard1of1.bin', '/c/m', 'u'), 'group1-shard1of1.bin');
  assert.equal(checkWeightPath('w/group1.bin', '/c/m', 'u'), 'w/group1.bin');
  assert.throws(() => checkWeightPath('%E0%A4%A', '/c/m', 'u'), /malformed percent-encoding/);
  assert.throws(() => checkWeightPath('', '/c/m', 'u'), /not a file name/);
});

test('the issue repro: spp-extract info --model http://…/model.json with ../ weight paths writes nothing outside the cache', async () => {
  const outside = tempDir('spp-evil-');
  const cache = tempDir('spp-cache-');
  const path = `${'../'.repeat(12)}${outside.slice(1)}/PWNED.bin`;
  const srv = await serve({ '/model.json': json(modelJsonWithPath(path)), [`/${outside.slice(1)}/PWNED.bin`]: bytes(tinyWeights) });
  try {
    const r = await runCli(['info', '--model', `${srv.base}/model.json`, '--cache-dir', cache]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /refusing weight path .*PWNED\.bin.* in http:\/\/127\.0\.0\.1:\d+\/model\.json: '\.\.' segment/);
  } finally {
    await srv.close();
  }
  assert.ok(!existsSync(join(outside, 'PWNED.bin')));
  assert.deepEqual(tree(cache), []);
});

test('an endless body stops at the manifest size or the download cap; nothing is left behind', async () => {
  const srv = await serve({
    '/w/model.json': json(modelJsonWithPath('group1-shard1of1.bin')),
    '/w/group1-shard1of1.bin': endless,
    '/j/model.json': endless,
  });
  try {
    // A weight shard: the manifest says 904 bytes.
    const cache1 = tempDir('spp-cache-');
    await assert.rejects(
      resolveModel(`${srv.base}/w/model.json`, cache1),
      new RegExp(`${srv.base}/w/group1-shard1of1\\.bin: weight data larger than the manifest's 904 bytes`),
    );
    assert.deepEqual(tree(cache1), []);
    // model.json itself: the cap (1 MiB here) ends it.
    const cache2 = tempDir('spp-cache-');
    await assert.rejects(
      resolveModel(`${srv.base}/j/model.json`, cache2, { maxBytes: 1024 ** 2 }),
      new RegExp(`${srv.base}/j/model\\.json: the model is larger than the 1 MiB download cap \\(SPP_EXTRACT_MAX_DOWNLOAD=2G raises it\\)`),
    );
    assert.deepEqual(tree(cache2), []);
    // The same through the CLI, the cap set by the environment.
    const cache3 = tempDir('spp-cache-');
    const r = await runCli(['info', '--model', `${srv.base}/j/model.json`, '--cache-dir', cache3], { env: { SPP_EXTRACT_MAX_DOWNLOAD: '256K' } });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /j\/model\.json: the model is larger than the 256 KiB download cap/);
    assert.deepEqual(tree(cache3), []);
  } finally {
    await srv.close();
  }
});

test('a manifest declaring more weights than the cap is refused before any weight is fetched', async () => {
  const big = JSON.stringify({ ...tinyJson, weightsManifest: [{ paths: ['w.bin'], weights: [{ name: 'w', shape: [1024, 1024, 300], dtype: 'float32' }] }] });
  const srv = await serve({ '/model.json': json(big), '/w.bin': endless });
  const cache = tempDir('spp-cache-');
  try {
    await assert.rejects(resolveModel(`${srv.base}/model.json`, cache), /declares 1\.17 GiB of weights, over the 1 GiB download cap/);
    assert.deepEqual(srv.requests, ['/model.json']);
  } finally {
    await srv.close();
  }
  assert.deepEqual(tree(cache), []);
});

test('a stalled server hits the idle timeout; a slow one the total timeout', async () => {
  const stalled: Handler = (_req, res) => {
    res.writeHead(200);
    res.write('{');
  };
  const trickle: Handler = (_req, res) => {
    res.writeHead(200);
    const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(' ')), 20);
  };
  const srv = await serve({ '/stall/model.json': stalled, '/silent/model.json': () => undefined, '/slow/model.json': trickle });
  try {
    for (const path of ['/stall/model.json', '/silent/model.json']) {
      const cache = tempDir('spp-cache-');
      await assert.rejects(resolveModel(`${srv.base}${path}`, cache, { idleTimeoutMs: 300 }), new RegExp(`could not download .*no data for 0\\.3 s from ${srv.base}${path}`));
      assert.deepEqual(tree(cache), []);
    }
    const cache = tempDir('spp-cache-');
    await assert.rejects(resolveModel(`${srv.base}/slow/model.json`, cache, { idleTimeoutMs: 300, totalTimeoutMs: 600 }), /download took longer than 0\.6 s/);
    assert.deepEqual(tree(cache), []);
  } finally {
    await srv.close();
  }
});

test('redirects: a loop is cut after 5 hops; a single hop is followed', async () => {
  const srv = await serve({
    '/loop/model.json': (_req, res) => void res.writeHead(302, { location: '/loop/model.json' }).end(),
    '/moved/model.json': (_req, res) => void res.writeHead(301, { location: '/real/model.json' }).end(),
    '/real/model.json': json(modelJsonWithPath('group1-shard1of1.bin')),
    // tfjs resolves weights against the URL it was given, not the redirect target.
    '/moved/group1-shard1of1.bin': bytes(tinyWeights),
    '/ftp/model.json': (_req, res) => void res.writeHead(302, { location: 'file:///etc/passwd' }).end(),
  });
  try {
    const cache = tempDir('spp-cache-');
    await assert.rejects(resolveModel(`${srv.base}/loop/model.json`, cache), /could not download .*more than 5 redirects fetching http:\/\/127\.0\.0\.1:\d+\/loop\/model\.json/);
    assert.equal(srv.requests.length, 6, '1 request + 5 redirects');
    assert.deepEqual(tree(cache), []);
    await assert.rejects(resolveModel(`${srv.base}/ftp/model.json`, cache), /redirect to a non-http\(s\) URL file:\/\/\/etc\/passwd/);
    const ok = await resolveModel(`${srv.base}/moved/model.json`, cache);
    assert.deepEqual(readFileSync(join(ok.modelJsonPath, '..', 'group1-shard1of1.bin')), tinyWeights);
  } finally {
    await srv.close();
  }
});

test('a weight file whose size disagrees with the manifest is refused, naming it; no partial cache', async () => {
  for (const [what, body] of [['short', tinyWeights.subarray(0, 900)], ['long', Buffer.concat([tinyWeights, Buffer.alloc(4)])]] as const) {
    const srv = await serve({ '/m/model.json': json(modelJsonWithPath('group1-shard1of1.bin')), '/m/group1-shard1of1.bin': bytes(body) });
    const cache = tempDir('spp-cache-');
    try {
      await assert.rejects(resolveModel(`${srv.base}/m/model.json`, cache), (err: Error) => {
        const expected = what === 'short'
          ? /m\/group1-shard1of1\.bin: weight file 'group1-shard1of1\.bin' holds 900 bytes, the manifest's weights need 904/
          : /m\/group1-shard1of1\.bin: weight data larger than the manifest's 904 bytes/;
        assert.match(err.message, expected);
        return true;
      });
    } finally {
      await srv.close();
    }
    assert.deepEqual(tree(cache), [], what);
  }
});

test('a damaged cached download (short shard) is fetched again', async () => {
  const srv = await serve({ '/m/model.json': json(modelJsonWithPath('group1-shard1of1.bin')), '/m/group1-shard1of1.bin': bytes(tinyWeights) });
  const cache = tempDir('spp-cache-');
  try {
    const first = await resolveModel(`${srv.base}/m/model.json`, cache);
    const shard = join(first.modelJsonPath, '..', 'group1-shard1of1.bin');
    truncateSync(shard, 100);
    const again = await resolveModel(`${srv.base}/m/model.json`, cache);
    assert.equal(again.modelJsonPath, first.modelJsonPath);
    assert.equal(statSync(shard).size, 904);
    assert.equal(srv.requests.length, 4);
    assert.equal(readdirSync(cache).length, 1, 'no leftovers');
  } finally {
    await srv.close();
  }
});

test('4 processes downloading the same URL at once all succeed and leave one complete cache folder', async () => {
  // Slow shard so the downloads overlap.
  const srv = await serve({
    '/m/model.json': json(modelJsonWithPath('group1-shard1of1.bin')),
    '/m/group1-shard1of1.bin': (_req, res) => void setTimeout(() => res.writeHead(200).end(tinyWeights), 300),
  });
  const cache = tempDir('spp-cache-');
  try {
    const runs = await Promise.all(
      Array.from({ length: 4 }, () => runCli(['info', '--json', '--model', `${srv.base}/m/model.json`, '--cache-dir', cache, '--engine', 'tfjs'])),
    );
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.equal(JSON.parse(r.stdout).channels, 8);
    }
  } finally {
    await srv.close();
  }
  const entries = readdirSync(cache);
  assert.equal(entries.length, 1, entries.join(', '));
  assert.match(entries[0], /^url-[0-9a-f]{16}$/);
  assert.deepEqual(readdirSync(join(cache, entries[0])).sort(), ['SOURCE_URL', 'group1-shard1of1.bin', 'model.json']);
});

test('an unwritable cache: the URL model is downloaded into a private temp dir, one warning, temp removed at exit', async () => {
  const srv = await serve({ '/m/model.json': json(modelJsonWithPath('group1-shard1of1.bin')), '/m/group1-shard1of1.bin': bytes(tinyWeights) });
  // A regular file where a parent folder should be: ENOTDIR even for root (chmod does not stop root).
  const blocker = join(tempDir('spp-cache-parent-'), 'a-file');
  writeFileSync(blocker, 'not a folder');
  const tmp = tempDir('spp-tmpdir-');
  try {
    for (const engine of ['auto', 'tfjs']) {
      const r = await runCli(['info', '--json', '--engine', engine, '--model', `${srv.base}/m/model.json`, '--cache-dir', join(blocker, 'cache')], { env: { TMPDIR: tmp } });
      assert.equal(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout);
      assert.equal(info.engine, engine === 'auto' ? 'onnx' : 'tfjs');
      assert.ok(info.modelJson.startsWith(join(tmp, 'spp-extract-')), info.modelJson);
      const warnings = r.stderr.trim().split('\n');
      assert.equal(warnings.length, 1, r.stderr);
      assert.match(warnings[0], /^spp-extract: warning: model cache .*a-file\/cache is not writable \(ENOTDIR.*--cache-dir DIR or XDG_CACHE_HOME/);
      // Only our own entries: other libraries drop unrelated files in TMPDIR.
      assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('spp-extract-')), [], `${engine}: private temp copy removed`);
    }
  } finally {
    await srv.close();
  }
});

test('download limits: defaults, env overrides, size syntax', () => {
  assert.deepEqual(downloadLimits({}, {}), { maxBytes: 1024 ** 3, idleTimeoutMs: 30_000, totalTimeoutMs: 1_800_000, maxRedirects: 5 });
  const env = { SPP_EXTRACT_MAX_DOWNLOAD: '2G', SPP_EXTRACT_DOWNLOAD_TIMEOUT: '90' };
  assert.deepEqual(downloadLimits({}, env), { maxBytes: 2 * 1024 ** 3, idleTimeoutMs: 30_000, totalTimeoutMs: 90_000, maxRedirects: 5 });
  assert.equal(parseByteSize('512M'), 512 * 1024 ** 2);
  assert.equal(parseByteSize('1.5GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseByteSize('1000'), 1000);
  assert.throws(() => parseByteSize('lots'), /SPP_EXTRACT_MAX_DOWNLOAD: expected a size/);
  assert.throws(() => downloadLimits({}, { SPP_EXTRACT_DOWNLOAD_TIMEOUT: '-1' }), /SPP_EXTRACT_DOWNLOAD_TIMEOUT: expected seconds/);
});
