/**
 * A region run's records for one decoded image: the boxes its plan names (the file's, or the grid's
 * computed on the image as displayed), described from one forward pass, each becoming a row or,
 * for an empty / inverted / outside box, a failure of that box.
 */
import { toXyxy, type RegionPlan } from '../inputs/boxes.js';
import { recordRef, type WorkItem } from '../inputs/shard.js';
import type { FailureRecord, RegionRef, RowRecord, SidecarJson } from '../output/records.js';
import { gridBoxes, type Box, type CellWindow, type RegionResult } from '../spp/regions.js';
import type { DecodedImage } from '../decode/decode.js';
import { NON_FINITE } from './finite.js';

/** A record for the writer, in order. */
export type RunRecord = { kind: 'row'; rec: RowRecord } | { kind: 'failure'; rec: FailureRecord };

interface PlannedBox { region: RegionRef; xyxy: Box }

/** The plan's boxes in `image` (sizes as displayed): what each is called in the output, and its xyxy form. */
export function plannedBoxes(plan: RegionPlan, width: number, height: number): PlannedBox[] {
  if (plan.kind === 'boxes') {
    return plan.boxes.map((b, boxIndex) => ({
      region: { boxIndex, box: b.values, ...(b.label !== undefined ? { label: b.label } : {}) },
      xyxy: toXyxy(b.values, plan.format) as unknown as Box,
    }));
  }
  const tiles = gridBoxes(width, height, plan.rows, plan.cols);
  const boxes: Box[] = plan.full ? [[0, 0, width, height], ...tiles] : tiles;
  return boxes.map((xyxy, boxIndex) => ({ region: { boxIndex, box: xyxy }, xyxy }));
}

/**
 * Rows and box failures, in box order, each box pooled when its record is asked for (so a run
 * holds one region descriptor at a time, however many boxes an image has). `onSmall` hears of the
 * first window narrower or shorter, in cells, than the finest level has bins.
 */
export function* regionRecords(
  item: WorkItem, image: DecodedImage, planned: readonly PlannedBox[], describe: (box: Box) => RegionResult,
  finest: number, onSmall: (box: number, window: CellWindow) => void, json?: SidecarJson,
): Generator<RunRecord> {
  const { path } = item;
  // --keep-json: every box of a tar member carries its sidecar.
  const ref = { ...recordRef(item), ...(json ? { json } : {}) };
  const size = { width: image.originalWidth, height: image.originalHeight };
  let small = false;
  for (const [k, p] of planned.entries()) {
    const region = p.region;
    let r: RegionResult;
    try {
      r = describe(p.xyxy);
    } catch (err) {
      // Never expected (the map was checked): still one record for this box, so the image's count holds.
      yield { kind: 'failure', rec: { ...ref, region, reason: 'box-error', error: `${path}: box ${k}: ${(err as Error).message}` } };
      continue;
    }
    if (!r.ok) {
      // A box's own problem is box-<why>; a descriptor that is not finite is the model's, named as for a whole image.
      const reason = r.reason === NON_FINITE ? NON_FINITE : `box-${r.reason}`;
      yield { kind: 'failure', rec: { ...ref, region, reason, error: `${path}: box ${k}: ${r.message}` } };
      continue;
    }
    if (!small && (r.window.x1 - r.window.x0 < finest || r.window.y1 - r.window.y0 < finest)) {
      small = true;
      onSmall(k, r.window);
    }
    yield { kind: 'row', rec: { ...ref, ...size, descriptor: r.descriptor, region } };
  }
}
