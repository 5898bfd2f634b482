/**
 * A region run's records for one decoded image: the boxes its plan names (the file's, or the grid's
 * computed on the image as displayed), described from one forward pass, each becoming a row or,
 * for an empty / inverted / outside box, a failure of that box.
 */
import { toXyxy, type RegionPlan } from '../inputs/boxes.js';
import type { WorkItem } from '../inputs/shard.js';
import type { FailureRecord, RegionRef, RowRecord } from '../output/records.js';
import { gridBoxes, type Box, type CellWindow, type RegionResult } from '../spp/regions.js';
import type { DecodedImage } from '../decode/decode.js';

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

/** Rows and box failures, in box order. */
export function regionRecords(item: WorkItem, image: DecodedImage, planned: readonly PlannedBox[], results: readonly RegionResult[]): RunRecord[] {
  const { index, path } = item;
  const size = { width: image.originalWidth, height: image.originalHeight };
  return results.map((r, k): RunRecord => {
    const region = planned[k].region;
    if (r.ok) return { kind: 'row', rec: { index, path, ...size, descriptor: r.descriptor, region } };
    return { kind: 'failure', rec: { index, path, region, reason: `box-${r.reason}`, error: `${path}: box ${k}: ${r.message}` } };
  });
}

/** The first window (if any) narrower or shorter, in cells, than the finest level has bins. */
export function tooSmallWindow(results: readonly RegionResult[], finest: number): { box: number; window: CellWindow } | undefined {
  for (const [box, r] of results.entries()) {
    if (r.ok && (r.window.x1 - r.window.x0 < finest || r.window.y1 - r.window.y0 < finest)) return { box, window: r.window };
  }
  return undefined;
}
