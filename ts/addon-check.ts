// Imported by native.ts just before napi-rs's generated loader: ES modules evaluate in import
// order, so a missing platform package throws NATIVE_BINARY_MISSING (with the fix) first.
import { assertAddonInstalled } from './platform.cjs';

assertAddonInstalled();
