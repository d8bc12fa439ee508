/**
 * `serve --demo`: the demo page, TF.js served from the server itself (the page must work without internet),
 * and the files of the current bundle under /bundle/<id>/..., immutable because the id is a content hash.
 * A page holding an older id gets 410 and reloads itself.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { BUNDLE_MANIFEST } from '../bundle/format.ts';
import { ClientError, unavailable } from './errors.ts';
import type { ModelHolder } from './model-holder.ts';
import { publicManifest } from './public-manifest.ts';

const require = createRequire(import.meta.url);
const WEB = join(import.meta.dirname, '..', '..', 'web');

// Maps, not object literals: a request for `__proto__` or `constructor` must find nothing, not Object's own.
const ASSETS = new Map<string, { path: string; type: string }>([
  ['tf-core.min.js', { path: require.resolve('@tensorflow/tfjs-core/dist/tf-core.min.js'), type: 'text/javascript' }],
  ['tf-backend-cpu.min.js', { path: require.resolve('@tensorflow/tfjs-backend-cpu/dist/tf-backend-cpu.min.js'), type: 'text/javascript' }],
  ['demo.js', { path: join(WEB, 'demo.js'), type: 'text/javascript' }],
  ['demo.css', { path: join(WEB, 'demo.css'), type: 'text/css' }],
]);

const TYPES = new Map([['.json', 'application/json'], ['.bin', 'application/octet-stream'], ['.usearch', 'application/octet-stream']]);

export function registerDemoRoutes(app: FastifyInstance, holder: ModelHolder): void {
  const cache = new Map<string, Buffer>();
  const asset = (name: string) => {
    let b = cache.get(name);
    if (!b) cache.set(name, (b = readFileSync(ASSETS.get(name)!.path)));
    return b;
  };

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(readFileSync(join(WEB, 'demo.html'))));

  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    const a = ASSETS.get(req.params.name);
    if (!a) throw new ClientError(404, 'not_found', `no asset '${req.params.name}'`);
    return reply.type(a.type).header('cache-control', 'no-cache').send(asset(req.params.name));
  });

  app.get<{ Params: { id: string; '*': string } }>('/bundle/:id/*', async (req, reply) => {
    const m = holder.current;
    if (!m) throw unavailable('no model loaded');
    if (req.params.id !== m.id) throw new ClientError(410, 'gone', `bundle '${req.params.id}' is no longer served (now '${m.id}'): reload the page`);
    // Only names the verified manifest lists, looked up as keys (never resolved as paths); the bytes come
    // from memory or are re-checked against the manifest by the bundle (read.ts).
    const file = req.params['*'];
    let body: Uint8Array;
    if (file === BUNDLE_MANIFEST) body = Buffer.from(JSON.stringify(publicManifest(m.bundle, { files: true })));
    else if (!Object.hasOwn(m.bundle.manifest.files, file)) throw new ClientError(404, 'not_found', `'${file.slice(0, 200)}' is not a file of bundle ${m.id}`);
    else body = await m.bundle.readFile(file);
    const ext = file.slice(file.lastIndexOf('.'));
    return reply.type(TYPES.get(ext) ?? 'application/octet-stream').header('cache-control', 'public, max-age=31536000, immutable').send(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  });
}
