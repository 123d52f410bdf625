import { pino } from 'pino';

export type Logger = pino.Logger;

/**
 * Structured JSON logs. Tokens and message bodies never belong in a log line;
 * the redaction below is a backstop for objects logged whole by mistake.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: {
      paths: ['token', 'authorization', '*.authorization', '*.token', 'body', '*.body', 'req.headers.authorization'],
      censor: '[redacted]',
    },
  }, destination);
}
