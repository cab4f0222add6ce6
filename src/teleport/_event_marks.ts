/**
 * The watcher's memory of which keys had an event while a reconcile was
 * under way, so that the reconcile skips a request the stream has already
 * brought newer news of. Kept only while a reconcile runs: a stream that
 * stays up for months sees every request of the cluster once, and none of
 * those events matters to a reconcile that started after them.
 */
export class EventMarks {
  /** Last event's number per key, for keys that had one while a reconcile ran. */
  readonly #last = new Map<string, number>();
  /** The marks of the reconciles under way (a new stream's may overlap its old one's end). */
  readonly #running = new Map<number, number>();
  #seq = 0;

  /** Keys remembered (for tests and memory checks). */
  get size(): number {
    return this.#last.size;
  }

  /** Starts a reconcile: its mark is the number of the last event before it. */
  begin(): number {
    const mark = this.#seq;
    this.#running.set(mark, (this.#running.get(mark) ?? 0) + 1);
    return mark;
  }

  /** An event for `key` arrived from the stream. */
  note(key: string): void {
    this.#seq++;
    if (this.#running.size === 0) return;
    // Re-inserted, so that the map stays in event order (pruning stops at the first newer one).
    this.#last.delete(key);
    this.#last.set(key, this.#seq);
  }

  /** Whether `key` had an event after `mark` (a reconcile's task for it is stale). */
  changedSince(key: string, mark: number): boolean {
    return (this.#last.get(key) ?? -1) > mark;
  }

  /** Ends the reconcile of `mark` (however it ended): forgets what no running one needs. */
  end(mark: number): void {
    const count = this.#running.get(mark) ?? 0;
    if (count <= 1) this.#running.delete(mark);
    else this.#running.set(mark, count - 1);
    if (this.#running.size === 0) {
      this.#last.clear();
      return;
    }
    const oldest = Math.min(...this.#running.keys());
    for (const [key, at] of this.#last) {
      if (at > oldest) break;
      this.#last.delete(key);
    }
  }
}
