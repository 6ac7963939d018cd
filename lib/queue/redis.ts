/** A Redis URL (redis://[user:pass@]host:port[/db]) as ioredis connection options. */
import { LatteError } from '../errors.js';

export interface RedisConnectionOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
}

export function redisOptions(url: string): RedisConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LatteError('E_ARG', `not a Redis URL: ${JSON.stringify(url)} (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:') throw new LatteError('E_ARG', `a Redis URL starts with redis:// (got ${JSON.stringify(url)})`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !Number.isInteger(db)) throw new LatteError('E_ARG', `the Redis URL's database must be a number (got ${JSON.stringify(u.pathname.slice(1))})`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined ? { db } : {}),
  };
}
