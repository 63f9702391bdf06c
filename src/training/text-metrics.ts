/**
 * Scores of generated text against a reference, as the generation literature computes them:
 * ROUGE-L F1 (Lin 2004) over lower-cased alphanumeric words, the tokenisation of Google's
 * `rouge-score` package; exact match on the whitespace-trimmed strings, which for greedy decoding
 * equals the teacher-forced example accuracy that evaluation during training reports (every
 * completion token, EOS included, predicted right).
 */

export function words(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

/** Length of the longest common subsequence of two word lists (O(n m) time, O(m) memory). */
export function lcsLength(a: string[], b: string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    const cur = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) cur[j] = x === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    prev = cur;
  }
  return prev[b.length];
}

export function rougeLF1(generated: string, reference: string): number {
  const g = words(generated),
    r = words(reference);
  if (g.length === 0 || r.length === 0) return g.length === r.length ? 1 : 0;
  const lcs = lcsLength(g, r);
  if (lcs === 0) return 0;
  const precision = lcs / g.length,
    recall = lcs / r.length;
  return (2 * precision * recall) / (precision + recall);
}

export function exactMatch(generated: string, reference: string): boolean {
  return generated.trim() === reference.trim();
}
