import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoxesFileError, csvFields, parseBoxes, recordsOf, toXyxy } from '../../src/inputs/boxes.js';
import { parseGrid } from '../../src/core/options.js';

describe('parseBoxes: JSONL', () => {
  it('groups lines of one path in order of first appearance; labels ride along; relative paths resolve against the base', () => {
    const text = [
      '{"path": "a.jpg", "boxes": [[0, 0, 10, 10], [1.5, 2, 3, 4]], "labels": ["cat", "dog"]}',
      '',
      '{"path": "/abs/b.png", "boxes": [[5, 5, 6, 6]]}',
      '{"path": "a.jpg", "boxes": [[7, 7, 8, 8]], "labels": ["owl"]}',
    ].join('\n');
    assert.deepEqual(parseBoxes(text, 'f.jsonl', '/data'), [
      { path: '/data/a.jpg', boxes: [{ values: [0, 0, 10, 10], label: 'cat' }, { values: [1.5, 2, 3, 4], label: 'dog' }, { values: [7, 7, 8, 8], label: 'owl' }] },
      { path: '/abs/b.png', boxes: [{ values: [5, 5, 6, 6] }] },
    ]);
  });

  it('keeps values that are not numbers (text that is no decimal, null) for the run to record as that box\'s failure; an image with no boxes is listed with none', () => {
    const [img, empty] = parseBoxes('{"path":"a","boxes":[["4","5","x","7"],[null,0,1,1]]}\n{"path":"b","boxes":[]}\n', 'f');
    assert.deepEqual(img.boxes[0].values.slice(0, 2), [4, 5]);
    assert.ok(Number.isNaN(img.boxes[0].values[2]));
    assert.ok(Number.isNaN(img.boxes[1].values[0]));
    assert.deepEqual(empty, { path: 'b', boxes: [] });
  });

  it('a "boxes" of the wrong shape (flat, objects, lists of another length, nested) is an error naming the file, the line and the value seen', () => {
    const ok = '{"path":"ok.jpg","boxes":[[0,0,1,1]]}\n';
    const cases: [string, string][] = [
      ['{"path":"a","boxes":[0,0,100,100]}', '--boxes f.jsonl:2: "boxes" is [0,0,100,100], a flat list: it is a list of boxes, each [x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh): write [[0,0,100,100]] for one box'],
      ['{"path":"a","boxes":[{"x0":0,"y0":0,"x1":5,"y1":5}]}', '--boxes f.jsonl:2: box 0 is {"x0":0,"y0":0,"x1":5,"y1":5} (an object); each box is a list of 4 numbers [x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh)'],
      ['{"path":"a","boxes":[[0,0,1,1],[1,2,3]]}', '--boxes f.jsonl:2: box 1 is [1,2,3]: 3 values, a box has 4 [x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh)'],
      ['{"path":"a","boxes":[[0,0,1,1],null]}', '--boxes f.jsonl:2: box 1 is null (null); each box is a list of 4 numbers [x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh)'],
      ['{"path":"a","boxes":[[0,[1],2,3]]}', '--boxes f.jsonl:2: box 0 is [0,[1],2,3]: value 1 is [1], not a number'],
      ['{"path":"a","boxes":{"x":1}}', '--boxes f.jsonl:2: "boxes" is {"x":1}; it must be a list of boxes, each [x0, y0, x1, y1] (or [x, y, w, h] with --box-format xywh)'],
    ];
    for (const [line, message] of cases) {
      assert.throws(() => parseBoxes(ok + line, 'f.jsonl'), (err: Error) => err instanceof BoxesFileError && err.message === message, line);
    }
    // A long value is cut short in the message.
    const long = `{"path":"a","boxes":[${JSON.stringify(Array.from({ length: 200 }, (_, i) => i))}]}`;
    assert.throws(() => parseBoxes(long, 'f.jsonl'), (err: Error) => /^--boxes f\.jsonl:1: box 0 is \[0,1,2,.{40,60}…: 200 values, a box has 4/.test(err.message) && err.message.length < 200);
  });

  it('refuses a line that is not an object with a path and a boxes array, naming the file and line', () => {
    const cases: [string, RegExp][] = [
      ['{"path":"a","boxes":[]}\n{not json', /^--boxes f\.jsonl:2: "\{not json" is not a JSON object/],
      ['{"boxes":[]}', /^--boxes f\.jsonl:1: "path" is missing; it must be a non-empty string/],
      ['{"path":"a","boxes":{}}', /:1: "boxes" is \{\}; it must be a list of boxes/],
      ['{"path":"a","boxes":[[0,0,1,1]],"labels":["x","y"]}', /:1: "labels" is \["x","y"\]; it must be a list of 1 strings/],
      ['{"path":"a","boxes":[[0,0,1,1]]}\n[1,2]', /:2: \[1,2\] is not a JSON object/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseBoxes(text, 'f.jsonl'), (err: Error) => err instanceof BoxesFileError && message.test(err.message), text);
    }
  });
});

describe('parseBoxes: CSV', () => {
  it('one box a line with the header path,x0,y0,x1,y1[,label]; quoted fields; CRLF; a BOM', () => {
    const text = '\uFEFFpath,x0,y0,x1,y1,label\r\n"dir, with comma/a.jpg",0,0,10,10,"say ""hi"""\r\nb.jpg,1,2,3,4,\r\n"dir, with comma/a.jpg",5,5,9,9,cat\r\n';
    assert.deepEqual(parseBoxes(text, 'f.csv', '/base'), [
      { path: '/base/dir, with comma/a.jpg', boxes: [{ values: [0, 0, 10, 10], label: 'say "hi"' }, { values: [5, 5, 9, 9], label: 'cat' }] },
      { path: '/base/b.jpg', boxes: [{ values: [1, 2, 3, 4], label: '' }] },
    ]);
    assert.deepEqual(parseBoxes('path,x0,y0,x1,y1\na.jpg,1,2,3,4\n', 'f.csv'), [{ path: 'a.jpg', boxes: [{ values: [1, 2, 3, 4] }] }]);
  });

  it('refuses a missing header, a wrong field count, an unterminated quote, an empty path', () => {
    const cases: [string, RegExp][] = [
      ['a.jpg,1,2,3,4', /^--boxes f\.csv:1: a CSV boxes file starts with the header path,x0,y0,x1,y1\[,label\]/],
      ['path,x0,y0,x1,y1\na.jpg,1,2,3', /^--boxes f\.csv:2: expected 5 comma-separated fields/],
      ['path,x0,y0,x1,y1\n"a.jpg,1,2,3,4', /:2: expected 5/],
      ['path,x0,y0,x1,y1\n,1,2,3,4', /:2: empty path/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseBoxes(text, 'f.csv'), (err: Error) => err instanceof BoxesFileError && message.test(err.message), text);
    }
    assert.deepEqual(csvFields('a,"b""c",,d'), ['a', 'b"c', '', 'd']);
    assert.equal(csvFields('"a'), undefined);
    assert.equal(csvFields('"a"b'), undefined);
  });

  it('a quoted field may hold line breaks (RFC 4180); errors still name the line the record starts on', () => {
    const text = 'path,x0,y0,x1,y1,label\n"a.jpg",0,0,10,10,"two\nlines"\r\n"multi\r\nline.jpg",1,2,3,4,x\nb.jpg,1,2,3\n';
    assert.throws(() => parseBoxes(text, 'f.csv'), (err: Error) => /^--boxes f\.csv:6: expected 6/.test(err.message));
    assert.deepEqual(parseBoxes(text.replace('b.jpg,1,2,3\n', ''), 'f.csv'), [
      { path: 'a.jpg', boxes: [{ values: [0, 0, 10, 10], label: 'two\nlines' }] },
      { path: 'multi\r\nline.jpg', boxes: [{ values: [1, 2, 3, 4], label: 'x' }] },
    ]);
    assert.throws(() => parseBoxes('path,x0,y0,x1,y1\n"open\na.jpg,1,2,3,4\n', 'f.csv'), /f\.csv:2: expected 5/);
  });

  it('numbers are plain decimals: hex, binary, octal, Infinity, blanks and empty fields are not (that box fails)', () => {
    const good = ['1', '-2', '+3.5', '.5', '7.', '1e3', '-1.5E-2', '0010'];
    const bad = ['0x10', '0b1111', '0o17', '1e', 'e3', '', ' 1', '1 ', 'Infinity', '-Infinity', 'NaN', '1_000', '1,5', '--1', '.', '+'];
    const text = ['path,x0,y0,x1,y1', ...[...good, ...bad].map((v) => `"${v}.jpg","${v}",0,0,0`)].join('\n');
    const got = parseBoxes(text, 'f.csv');
    for (const [k, v] of good.entries()) assert.equal(got[k]!.boxes[0]!.values[0], Number(v), v);
    for (const [k, v] of bad.entries()) assert.ok(Number.isNaN(got[good.length + k]!.boxes[0]!.values[0]), `'${v}' is not a number`);
    // JSONL: numbers as JSON numbers, or the same decimal text.
    assert.deepEqual(parseBoxes('{"path":"a.jpg","boxes":[["1","0x10",2,"3"]]}', 'f')[0]!.boxes[0]!.values, [1, NaN, 2, 3]);
  });

  it('an empty file names no images', () => {
    assert.deepEqual(parseBoxes('', 'f'), []);
    assert.deepEqual(parseBoxes('\n  \n', 'f'), []);
  });
});

describe('box formats, grids and record counts', () => {
  it('xywh adds width and height; xyxy and odd lengths pass through', () => {
    assert.deepEqual(toXyxy([10, 20, 30, 40], 'xywh'), [10, 20, 40, 60]);
    assert.deepEqual(toXyxy([10, 20, 30, 40], 'xyxy'), [10, 20, 30, 40]);
    assert.deepEqual(toXyxy([10, 20, -5, 40], 'xywh'), [10, 20, 5, 60], 'negative width: an inverted box, recorded as its failure');
    assert.deepEqual(toXyxy([1, 2, 3], 'xywh'), [1, 2, 3]);
  });

  it('--grid RxC parses rows and columns; the grid makes R·C records, plus one for the whole image', () => {
    assert.deepEqual(parseGrid('2x3'), { rows: 2, cols: 3 });
    assert.deepEqual(parseGrid(' 4 × 4 '), { rows: 4, cols: 4 });
    for (const bad of ['0x2', '2', '2x', 'ax2', '2x2x2', '-1x2', '1.5x2', '200x200']) assert.equal(parseGrid(bad), undefined, bad);
    assert.equal(recordsOf({ kind: 'grid', rows: 2, cols: 3, full: true }), 7);
    assert.equal(recordsOf({ kind: 'grid', rows: 2, cols: 3, full: false }), 6);
    assert.equal(recordsOf({ kind: 'boxes', boxes: [{ values: [0, 0, 1, 1] }, { values: [] }], format: 'xyxy' }), 2);
  });
});

describe('region records', () => {
  it('pool each box only when its record is taken (one descriptor held at a time), failures keeping their place', async () => {
    const { regionRecords, plannedBoxes } = await import('../../src/pipeline/regions.js');
    const plan = { kind: 'boxes' as const, format: 'xyxy' as const, boxes: [{ values: [0, 0, 4, 4] }, { values: [5, 5, 5, 9], label: 'empty' }, { values: [1, 1, 8, 8] }] };
    const image = { data: new Uint8Array(0), width: 10, height: 10, originalWidth: 10, originalHeight: 10 } as never;
    let calls = 0;
    const describe = (box: readonly number[]) => {
      calls++;
      return box[0] === box[2]
        ? { ok: false as const, reason: 'empty' as const, message: 'empty' }
        : { ok: true as const, descriptor: new Float32Array([box[2]]), window: { x0: 0, y0: 0, x1: 4, y1: 4 } };
    };
    const small: number[] = [];
    const records = regionRecords({ index: 3, path: 'a.jpg' }, image, plannedBoxes(plan, 10, 10), describe, 2, (k) => small.push(k));
    assert.equal(calls, 0, 'nothing pooled before the records are asked for');
    const first = records.next();
    assert.equal(calls, 1);
    assert.ok(!first.done && first.value.kind === 'row');
    const rest = [...records];
    assert.equal(calls, 3);
    assert.deepEqual(rest.map((r) => [r.kind, r.rec.region?.boxIndex, r.kind === 'failure' ? r.rec.reason : '']), [['failure', 1, 'box-empty'], ['row', 2, '']]);
    assert.deepEqual(small, [], 'windows of 4 cells are not smaller than 2 bins');
  });
});

describe('readBoxesFile: what it reads', () => {
  it('refuses a device (a link to /dev/zero would be read until memory runs out) naming the file', async () => {
    const { readBoxesFile } = await import('../../src/inputs/boxes.js');
    await assert.rejects(readBoxesFile('/dev/zero'), (err: Error) => err instanceof BoxesFileError && /\/dev\/zero: is not a regular file or a FIFO/.test(err.message));
  });
});
