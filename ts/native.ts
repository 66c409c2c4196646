// The generated napi loader (index.js / index.d.ts at the package root). Everything the TS
// layer does natively goes through this one import; addon-check.js runs first (see there).
import './addon-check.js';
export * from '../index.js';
