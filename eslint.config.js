// @ts-check
import js from '@eslint/js';
import prettierConfig from 'eslint-config-prettier';
import globals from 'globals';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: ['dist/', 'coverage/', 'node_modules/', 'bench/results/', '.stryker-tmp/', 'reports/'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
      globals: { ...globals.node },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // A resilience library passes its callers' rejections through unchanged, whatever they are.
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
    },
  },
  {
    // The hot path allocates nothing it does not have to (ARCHITECTURE.md section 3): no async frames,
    // spreads, object or array literals, or template strings in src/core. The slow path (retries, waits,
    // aborts, fallbacks, events that someone listens to) is exempt where it is marked, and
    // validate.ts runs once, at wrap time.
    files: ['src/core/**/*.ts'],
    ignores: ['src/core/validate.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: ':function[async=true]', message: 'No async functions on the hot path.' },
        { selector: 'AwaitExpression', message: 'No await on the hot path.' },
        { selector: 'SpreadElement', message: 'No spread on the hot path: it allocates.' },
        {
          selector: 'ObjectExpression',
          message: 'No object literal on the hot path: it allocates.',
        },
        { selector: 'ArrayExpression', message: 'No array literal on the hot path: it allocates.' },
        {
          selector: 'TemplateLiteral',
          message: 'No template string on the hot path: it allocates.',
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-empty-function': 'off',
      'require-await': 'off',
      'no-empty-function': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { ...globals.node },
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
  prettierConfig,
);
