/**
 * dg.notify.hello: a notify process started, or its bus came back, and asks every tail node
 * for its presence and then its recent publishes (PROTOCOL.md "Internal bus", Resync).
 *
 * One answer is a full presence snapshot, up to a hundred messages of users who left, and
 * batches of republishes: thousands of messages for a hello of a few bytes, which anyone on
 * the bus can send as fast as it carries them. So answers are spaced out.
 *
 * Guarantees:
 * - A hello heard when no answer went out within the last `minGapMs` is answered at once.
 *   Hellos heard within `minGapMs` of an answer share one more answer, sent `minGapMs`
 *   after the previous one: every notify process that says hello gets a whole answer, sent
 *   after its hello arrived, at most `minGapMs` later.
 * - However many hellos arrive, a node answers at most once per `minGapMs`.
 * - A malformed hello is refused, logged at a bounded rate (RefusalLog).
 * - Nothing is answered once `stop()` ran, or while `stopping()` says the node drains.
 */
import type { FastifyBaseLogger } from 'fastify';
import { RefusalLog } from '../bus/refusal-log.js';
import { NotifyHelloCheck, firstSchemaError } from '../protocol/notify-schemas.js';

export const HELLO_ANSWER_GAP_MS = 1000;

export interface HelloAnswersOptions {
  /** Sends the presence snapshot, then the recent publishes. */
  answer: () => void;
  /** True while the node drains: hellos are no longer answered. */
  stopping: () => boolean;
  log: FastifyBaseLogger;
  /** Shortest time between two answers. */
  minGapMs?: number;
  now?: () => number;
}

export class HelloAnswers {
  readonly #opts: HelloAnswersOptions;
  readonly #minGapMs: number;
  readonly #now: () => number;
  readonly #refusals: RefusalLog;
  #lastAnswer = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | null = null;
  /** Hellos heard since the last answer (named in its log line). */
  #heard: string[] = [];
  #waiting = 0;
  #stopped = false;

  constructor(opts: HelloAnswersOptions) {
    this.#opts = opts;
    this.#minGapMs = opts.minGapMs ?? HELLO_ANSWER_GAP_MS;
    this.#now = opts.now ?? Date.now;
    this.#refusals = new RefusalLog(opts.log);
  }

  /** Handles a dg.notify.hello message (validated here: the bus carries plain JSON). */
  heard(message: unknown): void {
    if (!NotifyHelloCheck.Check(message)) {
      this.#refusals.refused({ reason: firstSchemaError(NotifyHelloCheck, message) }, 'dg.notify.hello refused');
      return;
    }
    if (this.#stopped || this.#opts.stopping()) return;
    this.#waiting++;
    if (this.#heard.length < 8) this.#heard.push(message.instance);
    if (this.#timer !== null) return;
    const wait = this.#lastAnswer + this.#minGapMs - this.#now();
    if (wait <= 0) return this.#answer();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#answer();
    }, wait);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #answer(): void {
    if (this.#stopped || this.#opts.stopping()) return;
    this.#lastAnswer = this.#now();
    const hellos = this.#waiting;
    const instances = this.#heard;
    this.#waiting = 0;
    this.#heard = [];
    this.#opts.log.info({ instances, hellos }, 'notify said hello; sending presence and recent publishes again');
    this.#opts.answer();
  }
}
