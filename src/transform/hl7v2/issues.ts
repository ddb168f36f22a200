import type { TransformIssue } from '../format';

/** Collects errors and notes for one message; every issue carries the message index. */
export class Issues {
  readonly errors: TransformIssue[] = [];
  readonly notes: TransformIssue[] = [];

  constructor(readonly message: number) {}

  error(code: string, position: string | undefined, field: string | undefined, text: string): void {
    this.errors.push(issue(code, this.message, position, field, text));
  }

  note(code: string, position: string | undefined, field: string | undefined, text: string): void {
    this.notes.push(issue(code, this.message, position, field, text));
  }
}

export function issue(code: string, message: number | undefined, position: string | undefined, field: string | undefined, text: string): TransformIssue {
  const i: TransformIssue = { code, text };
  if (message !== undefined) i.message = message;
  if (position !== undefined) i.position = position;
  if (field !== undefined) i.field = field;
  return i;
}
