import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'data/**', '.diag/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      'no-restricted-syntax': ['error', { selector: 'ExportAllDeclaration', message: 'export names explicitly' }],
    },
  },
  {
    files: ['src/auth/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['../tail/*', '../notify/*', '../server/*', '../../tail/*', '../../notify/*', '../../server/*'] }] },
  },
  {
    files: ['src/tail/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['../auth/*', '../notify/*', '../server/*', '../../auth/*', '../../notify/*', '../../server/*'] }] },
  },
  {
    files: ['src/notify/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['../auth/*', '../tail/*', '../server/*', '../../auth/*', '../../tail/*', '../../server/*'] }] },
  },
);
