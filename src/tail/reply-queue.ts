/**
 * Replies of one log's writes, sent in the order the writes arrived even though they
 * complete out of order (a nack is known at once, an earlier write only after its commit).
 */
import type { Session } from './session.js';

/** A frame, or a function building it when it is sent. */
export type DeferredFrame = string | (() => string);

export interface ReplySlot {
  session: Session;
  frame: DeferredFrame | null;
}

export class ReplyQueue {
  #slots: ReplySlot[] = [];
  #head = 0;

  get empty(): boolean {
    return this.#head === this.#slots.length;
  }

  /** Reserves the next place in line. */
  reserve(session: Session): ReplySlot {
    const slot: ReplySlot = { session, frame: null };
    this.#slots.push(slot);
    return slot;
  }

  /** Sends now when nothing waits before it, else queues it behind the pending ones. */
  send(session: Session, frame: DeferredFrame): void {
    if (this.empty) session.send(typeof frame === 'string' ? frame : frame());
    else this.complete(this.reserve(session), frame);
  }

  complete(slot: ReplySlot, frame: DeferredFrame): void {
    slot.frame = frame;
    const slots = this.#slots;
    while (this.#head < slots.length) {
      const head = slots[this.#head];
      if (head === undefined || head.frame === null) break;
      head.session.send(typeof head.frame === 'string' ? head.frame : head.frame());
      this.#head++;
    }
    if (this.#head === slots.length) {
      this.#slots = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > slots.length) {
      this.#slots = slots.slice(this.#head);
      this.#head = 0;
    }
  }
}
