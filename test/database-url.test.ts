import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { DatabaseUnavailableError, isDatabaseUnavailable } from '../src/db/errors.js';
import { parseDatabaseUrl } from '../src/db/connection.js';

// DATABASE_URL in libpq's multi-host form, which node-postgres cannot read by
// itself (docs/architecture.md, "Failure handling"); the failover test runs it
// against real servers.

describe('a multi-host DATABASE_URL', () => {
  it('names each host in order, with its own single-host URL keeping user, password, database and options', () => {
    const target = parseDatabaseUrl('postgresql://chat:s3cret@db-1:5433,db-2,[::1]:6000/chat?target_session_attrs=read-write&connect_timeout=3&sslmode=disable');
    expect(target.hosts).toEqual([
      { host: 'db-1', port: 5433 },
      { host: 'db-2', port: 5432 },
      { host: '::1', port: 6000 },
    ]);
    expect(target.readWrite).toBe(true);
    expect(target.connectTimeoutSeconds).toBe(3);
    expect(target.hosts.map((h) => target.urlFor(h))).toEqual([
      'postgresql://chat:s3cret@db-1:5433/chat?connect_timeout=3&sslmode=disable',
      'postgresql://chat:s3cret@db-2:5432/chat?connect_timeout=3&sslmode=disable',
      'postgresql://chat:s3cret@[::1]:6000/chat?connect_timeout=3&sslmode=disable',
    ]);
  });

  it('reads a plain URL as one host that accepts any session', () => {
    const target = parseDatabaseUrl('postgres://postgres@127.0.0.1:5432/postgres');
    expect(target.hosts).toEqual([{ host: '127.0.0.1', port: 5432 }]);
    expect(target.readWrite).toBe(false);
  });

  it('is accepted by the configuration, and a target_session_attrs we cannot honour is refused at start', () => {
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@a:1,b:2/db?target_session_attrs=primary' }).databaseUrl).toBe('postgresql://u@a:1,b:2/db?target_session_attrs=primary');
    expect(() => loadConfig({ DATABASE_URL: 'postgresql://u@a:1,b:2/db?target_session_attrs=standby' })).toThrow(/target_session_attrs=standby is not supported/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://u@a/db' })).toThrow(/DATABASE_URL/);
  });
});

describe('an unavailable database', () => {
  it('is told apart from a failing statement, however the error is wrapped', () => {
    expect(isDatabaseUnavailable(new DatabaseUnavailableError('no primary'))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isDatabaseUnavailable({ code: '57P01', message: 'terminating connection due to administrator command' })).toBe(true);
    expect(isDatabaseUnavailable({ code: '25006', message: 'cannot execute INSERT in a read-only transaction' })).toBe(true);
    expect(isDatabaseUnavailable({ name: 'DriverAdapterError', cause: { kind: 'postgres', originalCode: '08006' } })).toBe(true);
    expect(isDatabaseUnavailable({ meta: { driverAdapterError: { cause: { kind: 'DatabaseNotReachable' } } } })).toBe(true);
    expect(isDatabaseUnavailable({ code: '23505', message: 'duplicate key value violates unique constraint' })).toBe(false);
    expect(isDatabaseUnavailable(new Error('syntax error at or near "SELEC"'))).toBe(false);
  });
});
