/** The four subgraphs in a process of their own; prints `{"base": ..., "pid": ...}` once listening. */
import { startSubgraphs } from './subgraphs.js';

const subgraphs = await startSubgraphs({ memoize: process.argv[2] !== '--no-memo' });
process.stdout.write(`${JSON.stringify({ base: subgraphs.base, pid: process.pid })}\n`);
process.on('SIGTERM', () => process.exit(0));
