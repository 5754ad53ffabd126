/*
 * ws4redis.mjs -- the ws4redis.js client as an ES module:
 *
 *     import WS4Redis from '.../django_bridge/js/ws4redis.mjs';
 *     import { WS4Redis } from '.../django_bridge/js/ws4redis.mjs';
 *     import WS4Redis from 'ws4redis-tornado';   // the npm package (this folder)
 *
 * This is only a wrapper: ws4redis.js holds the implementation and defines
 * globalThis.WS4Redis when it is evaluated, be it as a browser module or as
 * CommonJS in Node.
 */
import './ws4redis.js';

const WS4Redis = globalThis.WS4Redis;

export { WS4Redis };
export default WS4Redis;
