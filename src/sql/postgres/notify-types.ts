/** The public types of `PgNotifier`: notifications, events, stats and its errors. */
import { TxkitError } from '../../core/errors.js';
import type { OverflowPolicy } from './handler-queue.js';
import type { NotificationIterator as GenericIterator } from './notification-iterator.js';

/** One received notification. */
export interface Notification {
  channel: string;
  payload: string;
  /** Server process id of the sender's session. */
  processId: number;
  receivedAt: Date;
}

export type NotificationHandler = (notification: Notification) => void | Promise<void>;

/** Where a handler or JSON error came from. */
export interface NotifyErrorInfo {
  channel?: string;
  payload?: string;
  error: unknown;
}

/** Events of a notifier (also published on `txkit:notify:<event>` diagnostics channels). */
export interface NotifierEvents {
  notification: Notification;
  /** The listener connection dropped; notifications are lost until `reconnect`. */
  disconnect: { error: unknown };
  /** Reconnected and re-LISTENed: resync whatever you derive from notifications. */
  reconnect: { attempts: number; downtimeMs: number; channels: string[] };
  overflow: { channel: string; policy: OverflowPolicy; dropped: number };
  error: { source: string; error: unknown; channel?: string; payload?: string };
}

/** Counters for dashboards and tests. */
export interface NotifierStats {
  received: number;
  handled: number;
  dropped: number;
  handlerErrors: number;
  reconnects: number;
  queued: number;
  inFlight: number;
  /** Time from arrival to handler start, ms: mean and max since creation. */
  queueLatencyMeanMs: number;
  queueLatencyMaxMs: number;
  /** Arrival → handler start, as a cumulative histogram: how many waited at most `le` ms. */
  queueLatencyHistogram: { le: number; count: number }[];
}

/** `waitForNotification` ran out of time. */
export class NotificationTimeoutError extends TxkitError {
  constructor(message: string) {
    super('E_NOTIFY_TIMEOUT', message, { retryable: false });
  }
}

/** The handler queue was full and the policy is `'error'`. */
export class NotificationQueueOverflowError extends TxkitError {
  constructor(message: string) {
    super('E_NOTIFY_OVERFLOW', message, { retryable: false });
  }
}

/** An async iterator over one channel; `ready` resolves once LISTEN is in effect. */
export type NotificationIterator = GenericIterator<Notification>;
