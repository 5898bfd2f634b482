/**
 * Options a call cannot mean: unknown keys (library) and options that contradict each other
 * (library and command line, one checker: core/relations.ts reading the table's conflicts / needs /
 * atLeast). All refused before any model loads or any file is opened. The CLI's own messages:
 * test/e2e/messages.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeImage } from '../../src/decode/decode.js';
import { createExtractor } from '../../src/pipeline/extractor.js';
import { fitPca } from '../../src/pipeline/fit-pca.js';
import { checkCommandLine, resolveExtractorOptions } from '../../src/core/resolve.js';
import { OPTIONS } from '../../src/core/options.js';

test('an unknown key is refused, naming it and the closest valid key (size → decode.size)', async () => {
  await assert.rejects(createExtractor({ size: 448 } as never), /^UnknownOptionError: createExtractor: unknown option 'size'; did you mean decode\.size\?$/m);
  await assert.rejects(createExtractor({ decode: { sise: 448 } } as never), /unknown option 'decode\.sise'; did you mean decode\.size\?/);
  await assert.rejects(createExtractor({ gem_p: 2 } as never), /unknown option 'gem_p'; did you mean gemP\?/);
  await assert.rejects(createExtractor({ maxside: 300 } as never), /unknown option 'maxside'; did you mean decode\.maxSide\?/);
  await assert.rejects(createExtractor({ cache: '/tmp' } as never), /unknown option 'cache'; did you mean cacheDir\?/);
  // Nothing close: every valid key, so the right one is on screen.
  await assert.rejects(createExtractor({ frobnicate: 1 } as never), /unknown option 'frobnicate'; the options are .*\blevels\b.*\bdecode\.size\b.*\bonWarning\b/);
  // Undefined counts as not given, as it does for the valid keys.
  assert.equal(resolveExtractorOptions({ size: undefined } as never).decode.size, 224);
});

test("dtype, a command-line option, is refused with what the library offers instead", async () => {
  await assert.rejects(createExtractor({ dtype: 'float16' } as never),
    /unknown option 'dtype'; --dtype is a command-line option: descriptors are Float32Array; encodeNpy\('<f2', shape, data\) writes them as float16/);
});

test('decodeImage and fitPca refuse unknown keys too, before reading anything', async () => {
  await assert.rejects(decodeImage(Buffer.from('not read'), { maxside: 10 } as never), /^UnknownOptionError: decodeImage: unknown option 'maxside'; did you mean maxSide\?$/m);
  await assert.rejects(decodeImage(Buffer.from('not read'), { decode: { size: 10 } } as never), /decodeImage: unknown option 'decode'/);
  await assert.rejects(fitPca(['/nonexistent/x.jpg'], { dim: 2, pree: 'l2', size: 448 } as never), /fitPca: unknown option 'pree'; did you mean pre\?/);
  await assert.rejects(fitPca(['/nonexistent/x.jpg'], { dim: 2, pcaPre: 'sqrt' } as never), /fitPca: unknown option 'pcaPre'; --pca-pre is a command-line option; did you mean pre\?/);
});

test('library: contradictory options are refused, naming both and their values; defaults never conflict', async () => {
  await assert.rejects(createExtractor({ pool: 'max', gemP: 5 }), /^OptionConflictError: gemP 5 applies to pool 'gem' only \(pool is 'max'\)$/m);
  await assert.rejects(createExtractor({ gemP: 5 }), /gemP 5 applies to pool 'gem' only \(pool is 'max', the default\)/);
  await assert.rejects(createExtractor({ engine: 'onnx', backend: 'wasm' }), /backend 'wasm' and engine 'onnx' contradict each other/);
  await assert.rejects(createExtractor({ decode: { size: 448, maxSide: 300 } }), /decode\.maxSide 300 is below decode\.size 448: raise decode\.maxSide or lower decode\.size/);
  await assert.rejects(decodeImage(Buffer.from('not read'), { size: 448, maxSide: 300 }), /maxSide 300 is below size 448/);
  // What stays allowed: each alone, the default of the other, a tfjs backend with engine auto, a cap above the size.
  for (const ok of [{ pool: 'gem', gemP: 5 }, { backend: 'wasm' }, { engine: 'onnx', backend: 'auto' }, { decode: { maxSide: 100 } }, { decode: { size: 100, maxSide: 300 } }, { decode: { size: null, maxSide: 50 } }] as const) {
    assert.doesNotThrow(() => resolveExtractorOptions(ok), JSON.stringify(ok));
  }
});

/** What commander hands an action: every option's value, defaults included, and which came from the command line. */
function commandLine(given: Record<string, unknown>, command: 'extract' | 'info' = 'extract') {
  const raw: Record<string, unknown> = {};
  for (const d of OPTIONS) {
    if (!d.commands.includes(command)) continue;
    const attr = d.flag.split(' ')[0].replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (d.default !== undefined) raw[attr] = d.default;
  }
  Object.assign(raw, given);
  return () => checkCommandLine(raw, command, (attr) => attr in given);
}

test('command line: each contradiction of the issue is refused with both flags and values', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ size: '448', resize: false }, /Error: --size 448 and --no-resize contradict each other: --no-resize feeds the native size; drop one$/],
    [{ engine: 'onnx', backend: 'wasm' }, /Error: --backend wasm and --engine onnx contradict each other: a tfjs backend runs the tfjs engine; drop one$/],
    [{ pool: 'max', gemP: '5' }, /Error: --gem-p 5 applies to --pool gem only \(--pool is max\)$/],
    [{ gemP: '5' }, /Error: --gem-p 5 applies to --pool gem only \(--pool is max, the default\)$/],
    [{ boxFormat: 'xywh' }, /Error: --box-format xywh applies to --boxes only$/],
    [{ maxSide: '100', size: '448' }, /Error: --max-side 100 is below --size 448: raise --max-side or lower --size$/],
    [{ boxes: 'b.jsonl', grid: '2x2' }, /Error: --boxes and --grid contradict each other: pick one$/],
    [{ gridNoFull: true }, /Error: --grid-no-full applies to --grid only$/],
    [{ resume: true, force: true }, /Error: --resume and --force contradict each other: pick one$/],
  ];
  for (const [given, message] of cases) assert.throws(commandLine(given), message, JSON.stringify(given));
  // info takes --gem-p as well.
  assert.throws(commandLine({ gemP: '2' }, 'info'), /--gem-p 2 applies to --pool gem only/);
  // A bad value is named before any contradiction it is part of.
  assert.throws(commandLine({ size: '0', resize: false }), /Error: --size must be a positive integer, got '0'$/);
});

test('command line: defaults never conflict; the same flags in agreement pass', () => {
  const fine: Record<string, unknown>[] = [
    {}, { resize: false }, { resize: false, maxSide: '100' }, { maxSide: '100' }, { size: '448' }, { size: '448', maxSide: '448' },
    { pool: 'gem', gemP: '5' }, { pool: 'gem' }, { backend: 'wasm' }, { engine: 'tfjs', backend: 'wasm' }, { engine: 'onnx', backend: 'auto' },
    { boxes: 'b.jsonl', boxFormat: 'xywh' }, { grid: '2x2', gridNoFull: true }, { resume: true },
  ];
  for (const given of fine) assert.doesNotThrow(commandLine(given), JSON.stringify(given));
});
