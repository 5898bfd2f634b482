/** Deeper than any file the tool reads or writes: a value nested further is refused where it is parsed. */
export const MAX_JSON_DEPTH = 32;

/**
 * Whether a parsed JSON value nests lists or objects deeper than `max`. JSON.parse takes any depth,
 * but JSON.stringify (messages, comparisons, writers) recurses and overflows the stack on
 * [[[…]]] a hundred thousand deep. Walked with its own stack, so this never overflows.
 */
export function nestedTooDeep(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
