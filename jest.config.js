// Tests are compiled by `tsc` (part of `npm test`) and run as plain ESM, so worker threads and
// child processes started by the code under test load the same compiled files.
export default {
  testEnvironment: '<rootDir>/test/jest-environment.cjs',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  transform: {},
  testTimeout: 120000,
  maxWorkers: 2,
};
