/* global Deno -- this file runs on Deno */
// The behaviour suite on Deno, against the ESM bundle (dist/index.js) imported by path: Deno runs it as a
// web-style ES module (numeric timer handles, Deno.refTimer / Deno.unrefTimer), with no permissions.
import * as lib from '../../dist/index.js';
import { runSuite } from './suite.mjs';

const { failed } = await runSuite(lib, `deno ${Deno.version.deno} esm`);
Deno.exit(failed.length === 0 ? 0 : 1);
