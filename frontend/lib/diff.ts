/**
 * A small word-level diff for showing evidence: which words of `before` were removed
 * and which words of `after` were added. Words keep their trailing whitespace so the
 * text renders unchanged; they compare by the word alone.
 */

export interface Segment {
  text: string;
  changed: boolean;
}

export interface WordDiff {
  before: Segment[];
  after: Segment[];
}

/** Above this many cells the LCS table is skipped and the whole middle is marked changed. */
const MAX_CELLS = 400_000;

export function tokenize(text: string): string[] {
  if (!text) return [];
  const tokens: string[] = Array.from(text.match(/\s+|\S+\s*/g) ?? []);
  // A leading run of whitespace is its own token; glue it onto the first word.
  if (tokens.length > 1 && /^\s+$/.test(tokens[0])) {
    tokens[1] = tokens[0] + tokens[1];
    tokens.shift();
  }
  return tokens;
}

const word = (token: string) => token.trim();

function merge(tokens: string[], flags: boolean[]): Segment[] {
  const out: Segment[] = [];
  const push = (text: string, changed: boolean) => {
    if (!text) return;
    const last = out[out.length - 1];
    if (last && last.changed === changed) last.text += text;
    else out.push({ text, changed });
  };
  tokens.forEach((token, i) => {
    if (!flags[i]) return push(token, false);
    // Highlight the word; its trailing space only if the next word is changed too.
    const body = token.trimEnd();
    push(body, true);
    push(token.slice(body.length), i + 1 < tokens.length && flags[i + 1]);
  });
  return out;
}

export function diffWords(beforeText: string | null | undefined, afterText: string | null | undefined): WordDiff {
  const a = tokenize(beforeText ?? "");
  const b = tokenize(afterText ?? "");
  const aChanged = new Array<boolean>(a.length).fill(true);
  const bChanged = new Array<boolean>(b.length).fill(true);

  // Common prefix and suffix first: most edits are small.
  let start = 0;
  while (start < a.length && start < b.length && word(a[start]) === word(b[start])) {
    aChanged[start] = false;
    bChanged[start] = false;
    start++;
  }
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && word(a[endA - 1]) === word(b[endB - 1])) {
    endA--;
    endB--;
    aChanged[endA] = false;
    bChanged[endB] = false;
  }

  const n = endA - start;
  const m = endB - start;
  if (n > 0 && m > 0 && n * m <= MAX_CELLS) {
    // lcs[i][j] = length of the LCS of a[start+i..endA) and b[start+j..endB).
    const lcs: Uint32Array[] = [];
    for (let i = 0; i <= n; i++) lcs.push(new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] =
          word(a[start + i]) === word(b[start + j]) ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n && j < m) {
      if (word(a[start + i]) === word(b[start + j])) {
        aChanged[start + i] = false;
        bChanged[start + j] = false;
        i++;
        j++;
      } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
        i++;
      } else {
        j++;
      }
    }
  }

  return { before: merge(a, aChanged), after: merge(b, bChanged) };
}
