import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.data/',
      'gateway/db/generated/',
      'gateway/explorer/bundle/',
      'coverage/',
      'dist/',
      '.scratch/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  // The layers' boundaries: the core names no Plugin and no stand-in, and Plugins (the SDK, the example
  // packages, the Action contracts they share) reach the core only through the Plugin SDK's package.
  {
    files: ['gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)(services|subgraphs)/',
              message:
                'The core imports no Service stand-in and no Plugin: stand-ins start in launcher/, Plugins load from rover.yaml.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['subgraphs/**/*.ts', 'schema/**/*.ts', 'packages/**/*.ts', 'examples/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)gateway/',
              message:
                "A Plugin imports the core's contract from '@commerce-coordinator/plugin-sdk', never gateway/.",
            },
            {
              regex: '(^|/)services/',
              message: 'A Plugin talks to its Service over HTTP; it imports no stand-in.',
            },
          ],
        },
      ],
    },
  },
  {
    // A stand-in speaks its Service's wire format, as the real Service does: it shares with the Plugins
    // only the Service's published contracts (schema/contracts/), never their code or the core's.
    files: ['services/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)(gateway|subgraphs)/',
              message:
                'A stand-in imports no Plugin and nothing of the core: share a Service contract through schema/contracts/.',
            },
          ],
        },
      ],
    },
  },
  {
    // The flow inspector's page runs in the browser: `tsc -p gateway/inspector` checks its names
    // against the DOM's types, which no-undef does not know.
    files: ['gateway/inspector/static/**/*.js', 'gateway/explorer/page/**/*.js'],
    rules: { 'no-undef': 'off' },
  },
);
