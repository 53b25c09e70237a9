#!/usr/bin/env node
// The `commerce-coordinator` command of package.json's bin: runs cli/main.ts through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
