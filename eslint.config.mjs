// ESLint (flat config) for lib/ and test/ (TypeScript) and scripts/ and bench/
// (JavaScript type-checked by tsconfig.scripts.json). `npm run lint` runs it,
// then prettier --check and clang-format. Rules are the ones that catch bugs;
// layout is prettier's business (.prettierrc).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      '.test-build/**',
      'build/**',
      'build-*/**',
      'node_modules/**',
      'prebuilds/**',
      'runs/**',
      'third_party/**',
      '**/*.mjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: {
        // Typed rules read the same programs the build compiles.
        project: ['./tsconfig.test.json', './tsconfig.scripts.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // tsc reports undefined names (TS2304) in .ts and checkJs files alike.
      'no-undef': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true },
      ],
      // A promise nobody awaits loses its rejection (an unhandled rejection ends the process).
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      // Native results, state dicts and JSON are any at the boundary by design.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    // Tests require() modules on purpose (a fresh copy, the module object itself, a
    // build picked at run time); chai's expect(fn).to.throw/rejects take a Function
    // and its property assertions (expect(x).to.be.NaN) are expressions.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unsafe-function-type': 'off',
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
  {
    // Plain CommonJS: require() is how these load (scripts/install.js runs before any build).
    files: ['scripts/**/*.js', 'bench/**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
