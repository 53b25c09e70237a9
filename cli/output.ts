/** What a command prints: tables for people, JSON (`--json`) for programs; notes go to stderr. */

export interface Output {
  /** Where results go (stdout). */
  out(text: string): void;
  /** Where notes, progress and errors go (stderr), so stdout stays parseable. */
  note(text: string): void;
  readonly json: boolean;
}

export function createOutput(json: boolean): Output {
  return {
    json,
    out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    note: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

/** Prints `value` as JSON, or through `human` as text. */
export function print(output: Output, value: unknown, human: () => string): void {
  output.out(output.json ? JSON.stringify(value, null, 2) : human());
}

export type Cell = string | number | boolean | null | undefined;

/** A plain-text table: a header row, then one row each, columns padded to their widest cell. */
export function table(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = (cell: Cell) => (cell === null || cell === undefined || cell === '' ? '-' : String(cell));
  const cells = [headers.map(String), ...rows.map((row) => row.map(text))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `key: value` lines, keys aligned. */
export function fields(entries: ReadonlyArray<readonly [string, Cell]>): string {
  const width = Math.max(...entries.map(([key]) => key.length));
  return entries.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${value ?? '-'}`).join('\n');
}

/** One line of text for a cell: long or multi-line values shortened. */
export function brief(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const line = (text ?? '').replace(/\s+/g, ' ');
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
