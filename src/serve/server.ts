/**
 * The HTTP API (fastify): GET /health, GET /model, POST /recommend, POST /similar, POST /search (text
 * models), POST /embed,
 * GET /metrics, the demo page with --demo, and — only when an admin token is configured — POST /admin/reload
 * and GET /admin/status behind `Authorization: Bearer <token>`. Every failure is answered as
 * `{ "error": code, "message": one line }` with a 4xx/5xx status; nothing a client sends can crash it.
 * Clients are not trusted: public answers carry no pid, no file path, no error text of a failed reload.
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { UserError } from '../util/errors.ts';
import { secretEquals } from '../util/secret.ts';
import { registerDemoRoutes } from './demo-routes.ts';
import { ClientError, unavailable } from './errors.ts';
import { notifyPrimary } from './workers.ts';
import { ServerMetrics } from './metrics.ts';
import type { ModelHolder } from './model-holder.ts';
import { publicManifest } from './public-manifest.ts';
import type { RecommendResult, Recommender } from './recommender.ts';
import { embedSchema, parseBody, recommendBodyParser, searchSchema, similarSchema } from './schemas.ts';

export interface ServerOptions {
  /** Largest k a client may ask for. */
  maxK: number;
  demo: boolean;
  /** Fastify's request log (pino, JSON lines on stdout). */
  logger: boolean;
  /** The bearer token of /admin/* (hot reload over HTTP, status); null = no admin routes (SIGHUP still reloads). */
  adminToken: Buffer | null;
}

export const defaultServerOptions: ServerOptions = { maxK: 1000, demo: false, logger: false, adminToken: null };

/** Names this server process in /health without revealing its pid (tells `--workers` processes apart). */
const INSTANCE = randomBytes(6).toString('hex');

export function buildServer(holder: ModelHolder, metrics: ServerMetrics, opts: ServerOptions): FastifyInstance {
  const app = Fastify({ logger: opts.logger, bodyLimit: 1 << 20, return503OnClosing: true, forceCloseConnections: 'idle' });
  // JSON only: a text/plain body is a client mistake (415), not a string to validate.
  app.removeContentTypeParser('text/plain');
  const parseRecommend = recommendBodyParser(opts.maxK);
  const similar = similarSchema(opts.maxK);
  const search = searchSchema(opts.maxK);

  const model = (): Recommender => {
    const m = holder.current;
    if (!m) throw unavailable('no model loaded yet');
    return m;
  };
  const counted = (endpoint: string, r: RecommendResult) => {
    metrics.answer(endpoint, r.source, r.search);
    return r;
  };

  // A callback hook, not an async one: no promise per request.
  app.addHook('onResponse', (req, reply, done) => {
    metrics.request(req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  app.setErrorHandler((err: FastifyError | Error, req, reply) => {
    if (err instanceof ClientError) return reply.code(err.status).send({ error: err.code, message: err.message });
    const fe = err as FastifyError;
    switch (fe.code) {
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply.code(400).send({ error: 'bad_request', message: `invalid JSON body: ${oneLine(fe.message)}` });
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return reply.code(400).send({ error: 'bad_request', message: 'empty body: send a JSON object' });
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send({ error: 'payload_too_large', message: 'request body larger than 1 MiB' });
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send({ error: 'unsupported_media_type', message: `Content-Type must be application/json (got '${req.headers['content-type'] ?? 'none'}')` });
    }
    if (err instanceof SyntaxError || (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)) {
      return reply.code(fe.statusCode ?? 400).send({ error: 'bad_request', message: oneLine(err.message) });
    }
    req.log.error(err);
    if (!opts.logger) process.stderr.write(`towerlab serve: internal error on ${req.method} ${req.url}: ${err.message}\n`);
    return reply.code(500).send({ error: 'internal', message: 'internal error (see the server log)' });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  app.get('/health', async () => {
    const m = holder.current;
    return {
      // degraded: serving, but the last reload was rejected (the reason is at /admin/status).
      status: m ? (holder.lastError === null ? 'ok' : 'degraded') : 'loading',
      model: m ? { id: m.id, created: m.bundle.manifest.created, items: m.bundle.manifest.model.items, users: m.bundle.manifest.model.users, dim: m.bundle.manifest.model.dim } : null,
      search: m ? (m.bundle.index ? m.defaultSearch : 'exact') : null,
      index: m?.bundle.index ? { ...m.bundle.index.config, recallAt10AtBuild: 'meta' in m.bundle.index ? m.bundle.index.meta.recallAt10 : m.bundle.manifest.index?.recallAt10 } : null,
      reloading: holder.reloading,
      instance: INSTANCE,
    };
  });

  app.get('/model', async () => publicManifest(model().bundle));

  // The hot route is synchronous (fastify sends a returned value; a throw goes to the error handler), so a
  // request costs no promise.
  app.post('/recommend', (req) => counted('recommend', model().recommend(parseRecommend(req.body))));

  app.post('/similar', (req) => counted('similar', model().similar(parseBody(similar, req.body))));

  // Text dual encoders: a query text → the best documents.
  app.post('/search', async (req) => {
    const body = parseBody(search, req.body);
    const r = model().search(body);
    metrics.answer('search', 'model', r.search);
    return r;
  });

  app.post('/embed', async (req) => model().embed(parseBody(embedSchema, req.body)));

  app.get('/metrics', async (_req, reply) => {
    const m = holder.current;
    const gauge = m ? { id: m.id, created: m.bundle.manifest.created, items: m.bundle.manifest.model.items, users: m.bundle.manifest.model.users, loadedAt: holder.loadedAt } : null;
    return reply.type(metrics.contentType).send(await metrics.render(gauge, holder.reloading));
  });

  if (opts.adminToken) {
    const token = opts.adminToken;
    // Checked on the routes themselves (not by URL prefix, which an encoded path could dodge).
    const auth = async (req: FastifyRequest, reply: FastifyReply) => {
      const h = req.headers.authorization ?? '';
      const given = /^Bearer (.+)$/i.exec(h)?.[1] ?? '';
      if (!secretEquals(given, token)) {
        return reply.code(401).header('www-authenticate', 'Bearer realm="towerlab-admin"').send({ error: 'unauthorized', message: 'admin routes need Authorization: Bearer <token>' });
      }
    };
    app.post('/admin/reload', { onRequest: auth }, async (_req, reply) => {
      try {
        const r = await holder.requestReload();
        if (r.changed) notifyPrimary({ type: 'reloaded' }); // the other workers reload too
        return r;
      } catch (e) {
        const msg = e instanceof UserError ? e.message : String(e);
        return reply.code(422).send({ error: 'bundle_rejected', message: `${msg}; still serving ${holder.current?.id ?? 'nothing'}` });
      }
    });
    app.get('/admin/status', { onRequest: auth }, async () => ({ model: holder.current?.id ?? null, reloads: holder.reloads, loadedAt: holder.loadedAt, reloading: holder.reloading, lastReloadError: holder.lastError, pid: process.pid, instance: INSTANCE }));
  }

  if (opts.demo) registerDemoRoutes(app, holder);
  return app;
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();

