/**
 * Types of ws4redis.mjs, the ES module: the same client as ws4redis.js (whose
 * declarations, ws4redis.d.ts, hold every type), as default and named export.
 */
import WS4Redis = require('./ws4redis.js');

export default WS4Redis;
export { WS4Redis };
