import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

/** A plain-text table with right-aligned numeric columns. */
export function table(
  headers: readonly string[],
  rows: ReadonlyArray<ReadonlyArray<string | number>>,
): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? format(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: ReadonlyArray<string | number>) =>
    r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join(
    '\n',
  );
}

export function format(n: number): string {
  if (!Number.isFinite(n) || Number.isInteger(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

/** Nearest-rank percentile of an unsorted sample. */
export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface ChartPanel {
  title: string;
  unit: string;
  bars: Array<{ label: string; value: number }>;
}

/** Side-by-side horizontal bar charts, one panel per metric, as a standalone SVG. */
export function barChart(title: string, panels: readonly ChartPanel[]): string {
  const width = 760;
  const barHeight = 22;
  const colors = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#64748b'];
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  let y = 40;
  const parts: string[] = [];
  for (const panel of panels) {
    parts.push(`<text x="10" y="${y}" font-weight="bold">${esc(panel.title)} (${esc(panel.unit)})</text>`);
    y += 10;
    const max = Math.max(...panel.bars.map((b) => b.value), 1e-9);
    panel.bars.forEach((bar, i) => {
      const w = Math.max(1, (bar.value / max) * (width - 330));
      parts.push(
        `<text x="10" y="${y + 16}">${esc(bar.label)}</text>`,
        `<rect x="200" y="${y + 2}" width="${w.toFixed(1)}" height="${barHeight - 4}" fill="${colors[i % colors.length]}"/>`,
        `<text x="${(205 + w).toFixed(1)}" y="${y + 16}">${esc(format(bar.value))}</text>`,
      );
      y += barHeight;
    });
    y += 24;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

export function writeResults(name: string, json: unknown, svg?: string): string[] {
  mkdirSync(resultsDir, { recursive: true });
  const files = [`${resultsDir}${name}.json`];
  writeFileSync(files[0]!, `${JSON.stringify(json, null, 2)}\n`);
  if (svg) {
    files.push(`${resultsDir}${name}.svg`);
    writeFileSync(files[1]!, svg);
  }
  return files;
}
