/** Node-only parts of the client SDK (never in the browser bundle). */
export { FileKeyStorage } from './storage-file.js';
