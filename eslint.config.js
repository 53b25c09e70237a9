import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.data/', 'gateway/db/generated/', 'coverage/', 'dist/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The flow inspector's page runs in the browser: `tsc -p gateway/inspector` checks its names
    // against the DOM's types, which no-undef does not know.
    files: ['gateway/inspector/static/**/*.js'],
    rules: { 'no-undef': 'off' },
  },
);
