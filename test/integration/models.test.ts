import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { downloadFirst, downloadInto, downloadLimits, IntegrityError, SourcesFailedError } from '../../src/backbone/download.js';
import { findRegistryEntry, MODEL_REGISTRY } from '../../src/backbone/registry.js';
import { resolveModel } from '../../src/backbone/source.js';
import { runCli } from '../helpers/cli.js';
import { serve, type Handler } from '../helpers/serve.js';
import { fixture, missingShared, sharedPath } from '../helpers/shared.js';
import { tempDir } from '../helpers/tmp.js';

const TINY = ['model.json', 'group1-shard1of1.bin'];
const tinyFiles = () => Object.fromEntries(TINY.map((f) => [f, readFileSync(fixture('tiny-graph', f))]));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Imitates how TF Hub serves a TF.js model today: `/hub/<model>/<file>` redirects to
 * `/kaggle/<model>/<file>`, which redirects to `/storage/<n>/<file>?X-Goog-Expires=…&X-Goog-Signature=…`,
 * a signature valid for that one path until it expires. A weight URL resolved against where
 * model.json landed reuses model.json's signature and is refused, as storage.googleapis.com does.
 * Files named in `expire` get a signature that has already expired.
 */
async function hubChain(models: Record<string, Record<string, Buffer>>, expire = new Set<string>()) {
  const secret = randomBytes(16);
  const sign = (path: string, expires: number) => createHmac('sha256', secret).update(`${path}\n${expires}`).digest('hex');
  const routes: Record<string, Handler> = {};
  let n = 1000;
  for (const [model, files] of Object.entries(models)) {
    const bucket = `/storage/${n++}`;
    for (const [name, body] of Object.entries(files)) {
      routes[`/hub/${model}/${name}`] = (_req, res) => void res.writeHead(302, { location: `/kaggle/${model}/${name}` }).end();
      routes[`/kaggle/${model}/${name}`] = (_req, res) => {
        const expires = Math.floor(Date.now() / 1000) + (expire.has(name) ? -60 : 3600);
        const path = `${bucket}/${name}`;
        res.writeHead(302, { location: `${path}?X-Goog-Expires=${expires}&X-Goog-Signature=${sign(path, expires)}` }).end();
      };
      routes[`${bucket}/${name}`] = (req, res) => {
        const q = new URL(req.url ?? '', 'http://x').searchParams;
        const expires = Number(q.get('X-Goog-Expires'));
        const refuse = (code: string) => void res.writeHead(403, { 'content-type': 'application/xml' }).end(`<Error><Code>${code}</Code></Error>`);
        if (q.get('X-Goog-Signature') !== sign(`${bucket}/${name}`, expires)) return refuse('SignatureDoesNotMatch');
        if (expires < Date.now() / 1000) return refuse('ExpiredToken');
        res.writeHead(200).end(body);
      };
    }
  }
  return serve(routes);
}

/** A port nothing listens on: a machine with no way out. */
async function deadBase(): Promise<string> {
  const srv = await serve({});
  await srv.close();
  return srv.base;
}

function tree(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).sort() : [];
}

/** The CLI with its cache, home and model settings in temp folders, whatever the caller's environment holds. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const home = tempDir('spp-home-');
  return runCli(args, { env: { HOME: home, XDG_CACHE_HOME: join(home, '.cache'), SPP_EXTRACT_MODEL: '', SPP_EXTRACT_MODEL_MIRROR: '', ...env } });
}

test('the TF Hub → Kaggle → signed storage chain: each file resolved against the URL given, through its own redirects, its own signature', async () => {
  const srv = await hubChain({ m: tinyFiles() });
  const cache = tempDir('spp-cache-');
  try {
    const got = await resolveModel(`${srv.base}/hub/m/model.json?tfjs-format=file`, cache);
    assert.deepEqual(readFileSync(join(got.modelJsonPath, '..', 'group1-shard1of1.bin')), readFileSync(fixture('tiny-graph', 'group1-shard1of1.bin')));
    const paths = srv.requests.map((r) => r.split('?')[0]);
    assert.deepEqual(paths, [
      '/hub/m/model.json', '/kaggle/m/model.json', '/storage/1000/model.json',
      '/hub/m/group1-shard1of1.bin', '/kaggle/m/group1-shard1of1.bin', '/storage/1000/group1-shard1of1.bin',
    ]);
    // The weight was asked for at the URL given (its query kept), not beside where model.json landed.
    assert.equal(srv.requests[3], '/hub/m/group1-shard1of1.bin?tfjs-format=file');
    const sigs = srv.requests.filter((r) => r.startsWith('/storage/')).map((r) => new URL(r, 'http://x').searchParams.get('X-Goog-Signature'));
    assert.notEqual(sigs[0], sigs[1], 'each file its own signature');
    // What a client resolving against the redirected model.json asks for is refused: the imitation is faithful.
    const naive = `${srv.base}${srv.requests[2].replace('model.json', 'group1-shard1of1.bin')}`;
    assert.equal((await fetch(naive)).status, 403);
  } finally {
    await srv.close();
  }
});

test('an expired signature: 403 → one clear line naming the file and the host, never the signed query string; nothing cached', async () => {
  const srv = await hubChain({ m: tinyFiles(), 'mobilenet_v2_1.00': tinyFiles() }, new Set(['group1-shard1of1.bin']));
  const cache = tempDir('spp-cache-');
  try {
    await assert.rejects(resolveModel(`${srv.base}/hub/m/model.json?tfjs-format=file`, cache), (err: Error) => {
      assert.match(err.message, /HTTP 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/hub\/m\/group1-shard1of1\.bin\?tfjs-format=file \(answered by 127\.0\.0\.1:\d+ after 2 redirects; the signed link it was sent to was refused: expired, or issued for another file\)/);
      assert.doesNotMatch(err.message, /X-Goog|Signature=/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    assert.deepEqual(tree(cache), []);

    // Through the CLI, a registry id from a mirror: the same line, with what to do.
    const r = await cli(['models', 'pull', 'mobilenet_v2_1.00', '--cache-dir', cache], { SPP_EXTRACT_MODEL_MIRROR: `${srv.base}/hub/` });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^spp-extract: error: mobilenet_v2_1\.00: could not download http:\/\/127\.0\.0\.1:\d+\/hub\/mobilenet_v2_1\.00\/model\.json \(HTTP 403 Forbidden for http:\/\/127\.0\.0\.1:\d+\/hub\/mobilenet_v2_1\.00\/group1-shard1of1\.bin \(answered by 127\.0\.0\.1:\d+ after 2 redirects; the signed link it was sent to was refused/);
    assert.doesNotMatch(lines[0], /X-Goog|Signature=/);
    assert.ok(lines[0].includes('run `spp-extract models pull mobilenet_v2_1.00` on one with internet'), lines[0]);
    assert.deepEqual(tree(cache), []);
  } finally {
    await srv.close();
  }
});

test('SPP_EXTRACT_MODEL_MIRROR through the chain: models pull, models path, models --json, then offline runs from the cache', { timeout: 120_000 }, async () => {
  const srv = await hubChain({ 'mobilenet_v2_1.00': tinyFiles() });
  const cache = tempDir('spp-cache-');
  const mirror = { SPP_EXTRACT_MODEL_MIRROR: `${srv.base}/hub` };
  try {
    const before = await cli(['models', 'path', 'mobilenet_v2_1.00', '--cache-dir', cache]);
    assert.equal(before.code, 1);
    assert.equal(before.stderr.trim().split('\n').length, 1, before.stderr);
    assert.match(before.stderr, /^spp-extract: error: mobilenet_v2_1\.00 is not in the model cache .* \(not downloaded\): run `spp-extract models pull mobilenet_v2_1\.00` first/);

    const pull = await cli(['models', 'pull', 'v2_1.0', '--cache-dir', cache], mirror);
    assert.equal(pull.code, 0, pull.stderr);
    assert.equal(pull.stderr, '');
    const dir = join(cache, 'mobilenet_v2_1.00');
    assert.match(pull.stdout, new RegExp(`^mobilenet_v2_1\\.00: downloaded into ${dir}, 4\\.15 KiB from ${srv.base}/hub/mobilenet_v2_1\\.00/model\\.json; ONNX converted: ${cache}/onnx/[0-9a-f]{64}\\.onnx\\n$`));
    assert.deepEqual(readdirSync(dir).sort(), ['SOURCE_URL', 'group1-shard1of1.bin', 'model.json']);
    assert.ok(!readdirSync(cache).some((f) => f.includes('partial')));
  } finally {
    await srv.close();
  }
  // The server is gone: everything below reads the cache only.
  const again = await cli(['models', 'pull', 'mobilenet_v2_1.00', '--cache-dir', cache], mirror);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^mobilenet_v2_1\.00: already cached in .*; ONNX already converted: /);

  const path = await cli(['models', 'path', 'mobilenet_v2_1.00', '--cache-dir', cache]);
  assert.equal(path.code, 0, path.stderr);
  assert.equal(path.stdout, `${join(cache, 'mobilenet_v2_1.00')}\n`);

  const list = await cli(['models', '--json', '--cache-dir', cache], { SPP_EXTRACT_MODEL: 'v1-0.5' });
  assert.equal(list.code, 0, list.stderr);
  const listed = JSON.parse(list.stdout);
  assert.equal(listed.defaultModel, 'v1-0.5');
  assert.equal(listed.defaultFrom, 'SPP_EXTRACT_MODEL');
  assert.deepEqual(listed.models.map((m: { id: string }) => m.id), MODEL_REGISTRY.map((e) => e.id));
  const v2 = listed.models.find((m: { id: string }) => m.id === 'mobilenet_v2_1.00');
  assert.equal(v2.cached, true);
  assert.equal(v2.path, join(cache, 'mobilenet_v2_1.00'));
  assert.equal(v2.bytes, TINY.reduce((n, f) => n + readFileSync(fixture('tiny-graph', f)).byteLength, 0));
  assert.equal(listed.models.find((m: { default: boolean }) => m.default).id, 'mobilenet_v1_0.50');
  const v1 = listed.models.find((m: { id: string }) => m.id === 'mobilenet_v1_0.25');
  assert.deepEqual([v1.cached, v1.path, v1.bytes, v1.family, v1.alpha], [false, null, 1_935_855, 'MobileNet v1', 0.25]);
  assert.deepEqual(v1.sources, findRegistryEntry('v1_0.25')!.sources);

  const text = await cli(['models', '--cache-dir', cache]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^id +family +α +input range +size +cached +where\n/);
  assert.match(text.stdout, new RegExp(`\\nmobilenet_v2_1\\.00 \\* +MobileNet v2 +1\\.00 +\\[0, 1\\] +4\\.15 KiB +yes +${join(cache, 'mobilenet_v2_1.00')}\\n`));
  assert.match(text.stdout, /\nmobilenet_v1_0\.25 +MobileNet v1 +0\.25 +\[0, 1\] +1\.85 MiB +no +https:\/\/tfhub\.dev\/google\/imagenet\/mobilenet_v1_025_224\/classification\/1\/model\.json\?tfjs-format=file\n/);

  // SPP_EXTRACT_MODEL picks the model of a run (an alias of the cached id), the cache answers offline.
  const info = await cli(['info', '--json', '--cache-dir', cache], { SPP_EXTRACT_MODEL: 'v2_1.0' });
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).model, 'v2_1.0');
  assert.equal(JSON.parse(info.stdout).modelJson, join(cache, 'mobilenet_v2_1.00', 'model.json'));
  // --model beats the environment.
  const explicit = await cli(['info', '--json', '--cache-dir', cache, '--model', fixture('tiny-layers')], { SPP_EXTRACT_MODEL: 'v2_1.0' });
  assert.equal(explicit.code, 0, explicit.stderr);
  assert.equal(JSON.parse(explicit.stdout).model, fixture('tiny-layers'));
});

test('offline: the error names `spp-extract models pull ID` and SPP_EXTRACT_MODEL_MIRROR; an empty SPP_EXTRACT_MODEL is unset', async () => {
  const dead = await deadBase();
  const cache = tempDir('spp-cache-');
  for (const [env, id] of [[{ SPP_EXTRACT_MODEL: '' }, 'mobilenet_v2_1.00'], [{ SPP_EXTRACT_MODEL: 'mobilenet_v1_0.50' }, 'mobilenet_v1_0.50']] as const) {
    const r = await cli(['info', '--cache-dir', cache], { ...env, SPP_EXTRACT_MODEL_MIRROR: dead });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith(`spp-extract: error: --model ${env.SPP_EXTRACT_MODEL || id}: could not download ${dead}/${id}/model.json (`), lines[0]);
    assert.match(lines[0], /ECONNREFUSED/);
    assert.ok(lines[0].includes('(SPP_EXTRACT_MODEL_MIRROR is set: only the mirror was asked)'), lines[0]);
    assert.ok(lines[0].includes(`run \`spp-extract models pull ${id}\` on one with internet`), lines[0]);
    assert.ok(lines[0].includes(`put ${id}/model.json and its weight files in the mirror`), lines[0]);
  }
  assert.deepEqual(tree(cache), []);
  // Without a mirror the hint says to set one (the sources themselves are not asked here: the mirror stands for them).
  const r = await cli(['models', 'pull', 'mobilenet_v2_0.50', 'mobilenet_v2_0.75', '--cache-dir', cache], { SPP_EXTRACT_MODEL_MIRROR: dead });
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, 'one line per model that failed');
  assert.match(lines[0], /^spp-extract: error: mobilenet_v2_0\.50: could not download/);
  assert.match(lines[1], /^spp-extract: error: mobilenet_v2_0\.75: could not download/);
  assert.equal(r.stdout, '');
});

test('a SHA-256 mismatch with the registry\'s pin: an error naming the file and both hashes; nothing lands in the cache', async () => {
  const files = tinyFiles();
  const srv = await hubChain({ 'mobilenet_v1_0.25': files });
  const cache = tempDir('spp-cache-');
  try {
    const r = await cli(['models', 'pull', 'mobilenet_v1_0.25', '--cache-dir', cache], { SPP_EXTRACT_MODEL_MIRROR: `${srv.base}/hub` });
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    const pinned = findRegistryEntry('v1_0.25')!.sha256!['model.json'];
    assert.ok(lines[0].includes(`'model.json' has SHA-256 ${sha(files['model.json'])}, the registry pins ${pinned}`), lines[0]);
    // model.json is checked before any weight is asked for.
    assert.ok(!srv.requests.some((u) => u.includes('group1')), srv.requests.join(' '));
  } finally {
    await srv.close();
  }
  assert.deepEqual(tree(cache).filter((f) => f.startsWith('mobilenet_v1_0.25')), []);

  // A weight shard: the same check, file by file.
  const weights = await serve({
    '/m/model.json': (_req, res) => void res.writeHead(200).end(files['model.json']),
    '/m/group1-shard1of1.bin': (_req, res) => void res.writeHead(200).end(files['group1-shard1of1.bin']),
  });
  try {
    const into = tempDir('spp-into-');
    const wrong = 'ab'.repeat(32);
    await assert.rejects(downloadInto(`${weights.base}/m/model.json`, into, downloadLimits({}, {}), { 'group1-shard1of1.bin': wrong }), (err: Error) => {
      assert.ok(err instanceof IntegrityError);
      assert.equal(err.message, `${weights.base}/m/group1-shard1of1.bin: 'group1-shard1of1.bin' has SHA-256 ${sha(files['group1-shard1of1.bin'])}, ` +
        `the registry pins ${wrong} (a changed or damaged file; nothing was cached)`);
      return true;
    });
    assert.ok(!existsSync(join(into, 'model.json')), 'not marked complete');
  } finally {
    await weights.close();
  }
});

test('sources are tried in order: a dead one is passed over, all dead names each', async () => {
  const srv = await serve({
    '/m/model.json': (_req, res) => void res.writeHead(200).end(readFileSync(fixture('tiny-graph', 'model.json'))),
    '/m/group1-shard1of1.bin': (_req, res) => void res.writeHead(200).end(readFileSync(fixture('tiny-graph', 'group1-shard1of1.bin'))),
  });
  const dead = await deadBase();
  try {
    const into = tempDir('spp-into-');
    assert.equal(await downloadFirst([`${dead}/m/model.json`, `${srv.base}/m/model.json`], into, downloadLimits({}, {})), `${srv.base}/m/model.json`);
    assert.deepEqual(readdirSync(into).sort(), ['SOURCE_URL', 'group1-shard1of1.bin', 'model.json']);
    await assert.rejects(downloadFirst([`${dead}/a/model.json`, `${srv.base}/gone/model.json`], tempDir('spp-into-'), downloadLimits({}, {})), (err: Error) => {
      assert.ok(err instanceof SourcesFailedError && err.network);
      assert.match(err.message, new RegExp(`ECONNREFUSED.*\\(${dead}/a/model\\.json\\); HTTP 404 Not Found for ${srv.base}/gone/model\\.json$`));
      return true;
    });
  } finally {
    await srv.close();
  }
});

test('the pins are the files in ../shared; a folder mirror of them pulls v1 α0.25, and a tampered cached copy is replaced', { timeout: 120_000 }, async (t) => {
  const skip = missingShared('models', 'tfhub-mobilenet_v1_025_224');
  if (skip) return t.skip(skip);
  const src = sharedPath('models', 'tfhub-mobilenet_v1_025_224');
  const entry = findRegistryEntry('mobilenet_v1_0.25')!;
  for (const [name, pin] of Object.entries(entry.sha256!)) assert.equal(sha(readFileSync(join(src, name))), pin, name);
  assert.equal(entry.bytes, Object.keys(entry.sha256!).reduce((n, f) => n + readFileSync(join(src, f)).byteLength, 0));

  const mirror = tempDir('spp-mirror-');
  symlinkSync(src, join(mirror, 'mobilenet_v1_0.25'));
  const cache = tempDir('spp-cache-');
  const pull = await cli(['models', 'pull', 'mobilenet_v1_0.25', '--cache-dir', cache, '--json'], { SPP_EXTRACT_MODEL_MIRROR: mirror });
  assert.equal(pull.code, 0, pull.stderr);
  const [result] = JSON.parse(pull.stdout);
  assert.equal(result.status, 'downloaded');
  assert.equal(result.bytes, entry.bytes);
  for (const name of Object.keys(entry.sha256!)) assert.deepEqual(readFileSync(join(cache, 'mobilenet_v1_0.25', name)), readFileSync(join(src, name)));

  // Same size, other bytes: only the pin tells; pull fetches it again.
  const shard = join(cache, 'mobilenet_v1_0.25', 'group1-shard1of1');
  const bytes = readFileSync(shard);
  bytes[100] ^= 0xff;
  writeFileSync(shard, bytes);
  const again = await cli(['models', 'pull', 'mobilenet_v1_0.25', '--cache-dir', cache], { SPP_EXTRACT_MODEL_MIRROR: mirror });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /downloaded into .* \(the cached copy was replaced: 'group1-shard1of1' has SHA-256 [0-9a-f]{64}, the registry pins 0bb67208/);
  assert.deepEqual(readFileSync(shard), readFileSync(join(src, 'group1-shard1of1')));
});
